"""Foreign-exchange reference rates for stating VAT in national currency (SPEC §5, §6 step 8)."""
