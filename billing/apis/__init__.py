"""Read APIs of billing (SPEC §5), one module per resource: products and rate cards
(``catalog``), usage with cost (``usage``), the period summary and reserved hours
(``summary``), billing details and contracts (``contracts``), unbilled usage
(``unbilled``). Thin: parse, check who may read, one selector."""
