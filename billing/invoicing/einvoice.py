"""European e-invoices (EN 16931) of invoices and credit notes, in the UN/CEFACT Cross
Industry Invoice syntax (SPEC §3, §5 ``export_invoices --format facturx|xrechnung``).

- ``cii_xml(document, profile="factur-x")``: the CII XML of the Factur-X / ZUGFeRD EN 16931
  profile (guideline ``urn:cen.eu:en16931:2017``); ``profile="xrechnung"`` the same invoice
  under the XRechnung 3.0 CIUS guideline (German B2G/B2B), with the buyer reference and the
  seller contact it requires.
- ``facturx_pdf(document)``: the document's PDF (fonts embedded, sRGB output intent) with the
  XML embedded as ``factur-x.xml`` and the PDF/A-3 XMP metadata, by the ``factur-x`` library
  (which also checks the XML against the official XSD before embedding it).

Business terms follow EN 16931-1 (BT-n / BG-n in the comments); an invoice is type 380, a
credit note type 381 referencing its invoice (BT-25, BT-26). Amounts are those stored, at the
currency's minor unit; document totals satisfy the BR-CO rules by construction:
BT-106 = Σ BT-131, BT-109 = BT-106 − BT-107, BT-112 = BT-109 + BT-110, BT-115 = BT-112.
Credits applied (SPEC §6 step 7) are a document-level allowance (BG-20) at the invoice's VAT
category and rate, so they reduce the VAT basis as they do on the PDF. A line under a percent
discount states its list price as the item gross price (BT-148) and the discount per unit as
its price discount (BT-147), the net price (BT-146) being exactly gross less discount, all
per the same base quantity (BT-149); its amount is the net one, as billed (issue 14).
"""

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from lxml import etree

from ..legal import Address, french_b2b_mentions, issuer_identity_lines, split_address
from ..money import format_money, round_amount
from .models import CreditNote, Invoice, TaxReason
from .selectors import invoice_credit_parts
from .tax import category

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
GUIDELINES = {
    "factur-x": "urn:cen.eu:en16931:2017",
    "xrechnung": "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
}
# BT-23: the business process; PEPPOL's billing process is what XRechnung expects. A French
# issuer states its billing framework instead (French CTC rule BR-FR-08): S1, a services
# invoice deposited as such.
BUSINESS_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
FR_BILLING_FRAMEWORK = "S1"
INVOICE_TYPE, CREDIT_NOTE_TYPE = "380", "381"  # UNTDID 1001
SEPA_CREDIT_TRANSFER, PAYMENT_NOT_DEFINED = "58", "1"  # UNTDID 4461
SIREN_SCHEME = "0002"  # ISO 6523 ICD of the French SIRENE register


def unit_code(unit: str) -> str:
    """The UN/ECE Recommendation 20 (or 21, X-prefixed) code of a billing unit (BT-130):
    hours (GPU-hour, GB-hour) HUR, seconds SEC, days DAY, months MON, a package XPK,
    anything else C62 ("one": 1M tokens, a minimum true-up)."""
    text = unit.lower()
    for pattern, code in (
        (r"\bpackages?\b", "XPK"),
        (r"hours?\b|\bh\b", "HUR"),
        (r"seconds?\b", "SEC"),
        (r"minutes?\b", "MIN"),
        (r"\bdays?\b", "DAY"),
        (r"\bmonths?\b", "MON"),
    ):
        if re.search(pattern, text):
            return code
    return "C62"


@dataclass(frozen=True)
class Party:
    name: str
    address: Address
    vat_id: str = ""
    legal_id: str = ""  # BT-30 / BT-47
    legal_scheme: str = ""
    legal_info: str = ""  # BT-33
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    email: str = ""  # BT-34 / BT-49, electronic address (scheme EM)
    party_id: str = ""  # BT-29 / BT-46: our key for the party


@dataclass(frozen=True)
class Line:
    line_id: str
    name: str
    description: str
    quantity: Decimal
    unit: str
    price: Decimal  # net (BT-146)
    amount: Decimal
    start: date | None = None
    end: date | None = None  # inclusive
    list_price: Decimal | None = None  # gross (BT-148): before the discount; None: no discount


@dataclass(frozen=True)
class TaxBreakdown:
    rate: Decimal
    basis: Decimal
    amount: Decimal
    reason: str


@dataclass
class EDocument:
    """What an e-invoice says, read from a stored invoice or credit note."""

    number: str
    type_code: str
    issue_date: date
    currency: str
    seller: Party
    buyer: Party
    buyer_reference: str
    contract: str
    period_start: date
    period_end: date  # inclusive
    lines: list[Line]
    subtotal: Decimal
    allowance: Decimal
    taxes: list[TaxBreakdown]
    tax_total: Decimal
    total: Decimal
    due_date: date | None
    payment_terms: str
    iban: str
    bic: str
    notes: list[tuple[str, str]] = field(default_factory=list)  # (subject code, text)
    tax_currency: str = ""
    tax_total_national: Decimal | None = None
    preceding: tuple[str, date] | None = None
    # BG-20 per grant (reason, amount), adding up to ``allowance``; empty: one "Credits applied"
    allowances: list[tuple[str, Decimal]] = field(default_factory=list)


def _parties(invoice: Invoice) -> tuple[Party, Party]:
    details = invoice.issuer_details or {}
    country = invoice.issuer_country
    siren = details.get("siren", "")
    legal_info = " ".join(
        issuer_identity_lines(
            name=invoice.issuer_name,
            country=country,
            details=details,
            capital=_capital(details, country),
        )
    )
    seller = Party(
        name=invoice.issuer_name,
        address=split_address(invoice.issuer_address, country),
        vat_id=invoice.issuer_vat_id,
        legal_id=siren or details.get("register_number", ""),
        legal_scheme=SIREN_SCHEME if siren else "",
        legal_info=legal_info,
        contact_name=details.get("contact_name", ""),
        contact_phone=details.get("contact_phone", ""),
        contact_email=details.get("contact_email", ""),
        email=details.get("contact_email", ""),
        party_id=invoice.issuer.key,
    )
    buyer = Party(
        name=invoice.customer_name,
        address=split_address(invoice.customer_address, invoice.customer_country),
        vat_id=invoice.customer_vat_id,
        email=invoice.customer_email,
    )
    return seller, buyer


def _capital(details: dict[str, str], country: str) -> str:
    from ..legal import national_currency

    capital = details.get("share_capital")
    if not capital:
        return ""
    return format_money(Decimal(capital), national_currency(country))


def _notes(invoice: Invoice, reason: str) -> list[tuple[str, str]]:
    """BG-1 notes with UNTDID 4451 subject codes: the French mentions go in AAB (early
    payment), PMD (penalties), PMT (fixed indemnity), as the French CTC rules expect; the
    company-law mentions in REG."""
    details = invoice.issuer_details or {}
    notes: list[tuple[str, str]] = []
    if invoice.issuer_country == "FR":
        early, *rest = reversed(french_b2b_mentions(details))
        indemnity = rest[0]
        penalty = rest[1] if len(rest) > 1 else ""
        notes += [("AAB", early), ("PMT", indemnity)]
        if penalty:
            notes.append(("PMD", penalty))
    if details.get("payment_terms_text"):
        notes.append(("AAI", details["payment_terms_text"]))
    return notes


def _last_day(moment: Any) -> date:
    return (moment - timedelta(days=1)).date()


def invoice_document(invoice: Invoice) -> EDocument:
    """The e-invoice of a finalized invoice."""
    seller, buyer = _parties(invoice)
    taxes = list(invoice.taxes.all())
    lines = []
    for line in invoice.lines.select_related("product", "adjusts_period").order_by("position"):
        start, end = invoice.period_start.date(), _last_day(invoice.period_end)
        if line.adjusts_period is not None:
            start, end = line.adjusts_period.start.date(), _last_day(line.adjusts_period.end)
        lines.append(
            Line(
                line_id=str(line.position + 1),
                name=line.product.name if line.product else LINE_NAMES.get(line.kind, "Charge"),
                description=line.description,
                quantity=line.quantity,
                unit=line.unit,
                price=line.unit_price,
                amount=line.amount,
                start=start,
                end=end,
                list_price=line.list_unit_price,
            )
        )
    reason = taxes[0].reason if taxes else TaxReason.OUT_OF_SCOPE
    return EDocument(
        number=invoice.number,
        type_code=INVOICE_TYPE,
        issue_date=invoice.issue_date or invoice.created_at.date(),
        currency=invoice.currency,
        seller=seller,
        buyer=buyer,
        buyer_reference=invoice.org.slug,
        contract=invoice.contract.key,
        period_start=invoice.period_start.date(),
        period_end=_last_day(invoice.period_end),
        lines=lines,
        subtotal=invoice.subtotal,
        allowance=invoice.credits,
        allowances=[
            (p.label, p.amount) for p in invoice_credit_parts(org=invoice.org, invoice=invoice)
        ],
        taxes=[TaxBreakdown(t.rate, t.basis, t.amount, t.reason) for t in taxes],
        tax_total=invoice.tax_total,
        total=invoice.total,
        due_date=invoice.due_date,
        payment_terms=f"Net {invoice.payment_terms_days} days",
        iban=(invoice.issuer_details or {}).get("iban", ""),
        bic=(invoice.issuer_details or {}).get("bic", ""),
        notes=_notes(invoice, reason),
        tax_currency=invoice.tax_currency,
        tax_total_national=invoice.tax_total_national,
    )


LINE_NAMES = {"minimum_true_up": "Minimum spend true-up", "adjustment": "Prior-period adjustment"}


def credit_note_document(note: CreditNote) -> EDocument:
    """The e-invoice of a credit note: type 381, the invoice's parties as frozen on it, a
    reference to the invoice (BT-25, BT-26), positive amounts (what is credited)."""
    from .fx import credit_note_tax_national

    invoice = note.invoice
    seller, buyer = _parties(invoice)
    taxes = list(note.taxes.all())
    lines = [
        Line(
            line_id=str(line.position + 1),
            name=line.product.name if line.product else LINE_NAMES.get(line.kind, "Charge"),
            description=line.description,
            quantity=line.quantity,
            unit=line.unit,
            price=line.unit_price,
            amount=line.amount,
            list_price=line.invoice_line.list_unit_price,  # credited at the line's net price
        )
        for line in note.lines.select_related("product", "invoice_line").order_by("position")
    ]
    reason = taxes[0].reason if taxes else TaxReason.OUT_OF_SCOPE
    return EDocument(
        number=note.number,
        type_code=CREDIT_NOTE_TYPE,
        issue_date=note.issue_date,
        currency=note.currency,
        seller=seller,
        buyer=buyer,
        buyer_reference=invoice.org.slug,
        contract=invoice.contract.key,
        period_start=invoice.period_start.date(),
        period_end=_last_day(invoice.period_end),
        lines=lines,
        subtotal=note.subtotal,
        allowance=note.credits,
        taxes=[TaxBreakdown(t.rate, t.basis, t.amount, t.reason) for t in taxes],
        tax_total=note.tax_total,
        total=note.total,
        due_date=None,
        payment_terms=f"Credit of invoice {invoice.number}: {note.reason}"[:300],
        iban=(invoice.issuer_details or {}).get("iban", ""),
        bic=(invoice.issuer_details or {}).get("bic", ""),
        notes=_notes(invoice, reason),
        tax_currency=invoice.tax_currency,
        tax_total_national=credit_note_tax_national(note),
        preceding=(invoice.number, invoice.issue_date or note.issue_date),
    )


class NoEInvoice(ValueError):
    """Why an invoice has no e-invoice: ``code`` is ``invoice_draft`` (no number yet) or
    ``invoice_void`` (no longer payable: an EN 16931 invoice, type 380, would read as a bill
    to pay; the void is recorded on its PDF, marked VOID, as Stripe and Orb do)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def einvoice_refusal(invoice: Invoice) -> NoEInvoice | None:
    """Why ``invoice`` has no e-invoice (a draft, a void invoice), None when it has one."""
    if invoice.is_draft:
        return NoEInvoice(
            "invoice_draft",
            "A draft has no number yet: finalize it before issuing its e-invoice.",
        )
    if invoice.status == Invoice.Status.VOID:
        moment = invoice.status_changed_at
        when = f" on {moment.date().isoformat()}" if moment else ""
        return NoEInvoice(
            "invoice_void",
            f"Invoice {invoice.number} was void{when}: it is no longer payable, so it has no "
            "e-invoice; its PDF is marked VOID.",
        )
    return None


def document_of(obj: Invoice | CreditNote) -> EDocument:
    """The EN 16931 content of ``obj``. Raises ``NoEInvoice`` (a ValueError) for a draft or
    a void invoice."""
    if isinstance(obj, CreditNote):
        return credit_note_document(obj)
    refusal = einvoice_refusal(obj)
    if refusal is not None:
        raise refusal
    return invoice_document(obj)


# --- XML -------------------------------------------------------------------------------------


def _el(parent: Any, name: str, text: str | None = None, **attrs: str) -> Any:
    prefix, local = name.split(":")
    element = etree.SubElement(parent, f"{{{NS[prefix]}}}{local}", attrs)
    if text is not None:
        element.text = text
    return element


def _date(parent: Any, name: str, day: date, kind: str = "udt") -> None:
    _el(_el(parent, name), f"{kind}:DateTimeString", day.strftime("%Y%m%d"), format="102")


def _amount(value: Decimal, currency: str) -> str:
    return f"{round_amount(value, currency):f}"


# Quantities are stated to 4 decimals and prices to 6 (the French CTC rules BR-FR-DEC-02/03;
# EN 16931 itself sets no limit). The line amount (BT-131) is always the amount billed, as
# rounded once when rating; a price with more decimals (a token's) is stated per a base
# quantity (BT-149) of 1,000, 1,000,000, ... units instead.
QUANTITY_PLACES = Decimal("0.0001")
PRICE_PLACES = Decimal("0.000001")


def _price_base(*prices: Decimal) -> Decimal:
    """The base quantity (1, 1,000, 1,000,000, ...) per which 6 decimals hold every one of
    ``prices`` (a line's net and gross prices share one, BT-149)."""
    base = Decimal(1)
    while base < Decimal("1e12") and any(
        price * base != (price * base).quantize(PRICE_PLACES) for price in prices
    ):
        base *= 1000
    return base


def _per_base(price: Decimal, base: Decimal) -> Decimal:
    return (price * base).quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)


def _number(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


def _party(parent: Any, tag: str, party: Party, *, seller: bool) -> None:
    node = _el(parent, tag)
    if party.party_id and not (party.vat_id or party.legal_id):
        _el(node, "ram:ID", party.party_id)  # BR-CO-26: some identifier of the seller
    _el(node, "ram:Name", party.name)
    if party.legal_info:
        _el(node, "ram:Description", party.legal_info)  # BT-33
    if party.legal_id:
        legal = _el(node, "ram:SpecifiedLegalOrganization")
        if party.legal_scheme:
            _el(legal, "ram:ID", party.legal_id, schemeID=party.legal_scheme)
        else:
            _el(legal, "ram:ID", party.legal_id)
    if seller and (party.contact_name or party.contact_phone or party.contact_email):
        contact = _el(node, "ram:DefinedTradeContact")  # BG-6
        _el(contact, "ram:PersonName", party.contact_name or party.name)
        if party.contact_phone:
            phone = _el(contact, "ram:TelephoneUniversalCommunication")
            _el(phone, "ram:CompleteNumber", party.contact_phone)
        if party.contact_email:
            _el(_el(contact, "ram:EmailURIUniversalCommunication"), "ram:URIID",
                party.contact_email)  # fmt: skip
    address = _el(node, "ram:PostalTradeAddress")
    if party.address.postcode:
        _el(address, "ram:PostcodeCode", party.address.postcode)
    if party.address.lines:
        _el(address, "ram:LineOne", party.address.lines[0])
    if len(party.address.lines) > 1:
        _el(address, "ram:LineTwo", ", ".join(party.address.lines[1:]))
    if party.address.city:
        _el(address, "ram:CityName", party.address.city)
    _el(address, "ram:CountryID", party.address.country)
    if party.email:
        _el(_el(node, "ram:URIUniversalCommunication"), "ram:URIID", party.email,
            schemeID="EM")  # fmt: skip
    if party.vat_id:
        _el(_el(node, "ram:SpecifiedTaxRegistration"), "ram:ID", party.vat_id, schemeID="VA")


def _trade_tax(parent: Any, reason: str, rate: Decimal) -> None:
    code = category(reason, rate).code
    _el(parent, "ram:TypeCode", "VAT")
    _el(parent, "ram:CategoryCode", code)
    if code != "O":
        _el(parent, "ram:RateApplicablePercent", _number(rate))


def cii_xml(document: EDocument, *, profile: str = "factur-x") -> bytes:
    """The document as a CII XML (UTF-8 bytes) for ``profile`` ``factur-x`` (EN 16931
    profile) or ``xrechnung``."""
    if profile not in GUIDELINES:
        raise ValueError(f"profile must be one of {', '.join(GUIDELINES)}")
    cur = document.currency
    reason = document.taxes[0].reason if document.taxes else TaxReason.OUT_OF_SCOPE
    rate = document.taxes[0].rate if document.taxes else Decimal(0)
    out_of_scope = category(reason, rate).code == "O"
    root = etree.Element(f"{{{NS['rsm']}}}CrossIndustryInvoice", nsmap=NS)
    context = _el(root, "rsm:ExchangedDocumentContext")
    french = document.seller.address.country == "FR" and profile == "factur-x"
    _el(_el(context, "ram:BusinessProcessSpecifiedDocumentContextParameter"), "ram:ID",
        FR_BILLING_FRAMEWORK if french else BUSINESS_PROCESS)  # fmt: skip
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID",
        GUIDELINES[profile])  # fmt: skip
    header = _el(root, "rsm:ExchangedDocument")
    _el(header, "ram:ID", document.number)  # BT-1
    _el(header, "ram:TypeCode", document.type_code)  # BT-3
    _date(header, "ram:IssueDateTime", document.issue_date)  # BT-2
    for subject, text in document.notes:  # BG-1
        note = _el(header, "ram:IncludedNote")
        _el(note, "ram:Content", text)
        _el(note, "ram:SubjectCode", subject)

    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    # EN 16931 needs at least one line (BG-25): a period without charges says so at zero.
    lines = document.lines or [
        Line("1", "No charges in this period", "", Decimal(0), "", Decimal(0), Decimal(0))
    ]
    for line in lines:  # BG-25
        item = _el(transaction, "ram:IncludedSupplyChainTradeLineItem")
        _el(_el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", line.line_id)
        product = _el(item, "ram:SpecifiedTradeProduct")
        _el(product, "ram:Name", line.name)  # BT-153
        if line.description and line.description != line.name:
            _el(product, "ram:Description", line.description)  # BT-154
        quantity, price, gross = line.quantity, line.price, line.list_price
        if price < 0:  # BR-27: the net price is never negative; the quantity carries the sign
            quantity, price = -quantity, -price
            gross = None if gross is None else -gross
        code = unit_code(line.unit)
        base = _price_base(price) if gross is None else _price_base(price, gross)
        net_price = _per_base(price, base)
        agreement = _el(item, "ram:SpecifiedLineTradeAgreement")
        if gross is not None:  # BR-28: the gross price is never negative either
            gross_price = _per_base(gross, base)
            node = _el(agreement, "ram:GrossPriceProductTradePrice")
            _el(node, "ram:ChargeAmount", _number(gross_price))  # BT-148
            if base != 1:
                _el(node, "ram:BasisQuantity", _number(base), unitCode=code)  # BT-149
            discount = _el(node, "ram:AppliedTradeAllowanceCharge")
            _el(_el(discount, "ram:ChargeIndicator"), "udt:Indicator", "false")
            # BT-147 = BT-148 − BT-146, exactly (both stated at the same base and places).
            _el(discount, "ram:ActualAmount", _number(gross_price - net_price))
        net = _el(agreement, "ram:NetPriceProductTradePrice")
        _el(net, "ram:ChargeAmount", _number(net_price))  # BT-146
        if base != 1:
            _el(net, "ram:BasisQuantity", _number(base), unitCode=code)  # BT-149
        delivery = _el(item, "ram:SpecifiedLineTradeDelivery")
        _el(
            delivery,
            "ram:BilledQuantity",
            _number(quantity.quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP)),
            unitCode=code,
        )  # fmt: skip BT-129
        settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
        _trade_tax(_el(settlement, "ram:ApplicableTradeTax"), reason, rate)
        if line.start and line.end:  # BG-26
            period = _el(settlement, "ram:BillingSpecifiedPeriod")
            _date(period, "ram:StartDateTime", line.start)
            _date(period, "ram:EndDateTime", line.end)
        summation = _el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        _el(summation, "ram:LineTotalAmount", _amount(line.amount, cur))  # BT-131

    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    if document.buyer_reference:
        _el(agreement, "ram:BuyerReference", document.buyer_reference)  # BT-10
    seller, buyer = document.seller, document.buyer
    if out_of_scope:  # BR-O-02/03/04: no VAT ids on an invoice out of scope of VAT
        seller = Party(**{**seller.__dict__, "vat_id": ""})
        buyer = Party(**{**buyer.__dict__, "vat_id": ""})
    _party(agreement, "ram:SellerTradeParty", seller, seller=True)
    _party(agreement, "ram:BuyerTradeParty", buyer, seller=False)
    if document.contract:
        _el(
            _el(agreement, "ram:ContractReferencedDocument"),
            "ram:IssuerAssignedID",
            document.contract,
        )  # fmt: skip BT-12
    delivery = _el(transaction, "ram:ApplicableHeaderTradeDelivery")
    event = _el(delivery, "ram:ActualDeliverySupplyChainEvent")
    _date(event, "ram:OccurrenceDateTime", document.period_end)  # BT-72: the service's last day

    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    _el(settlement, "ram:PaymentReference", document.number)  # BT-83
    if document.tax_currency and document.tax_total_national is not None:
        _el(settlement, "ram:TaxCurrencyCode", document.tax_currency)  # BT-6
    _el(settlement, "ram:InvoiceCurrencyCode", cur)  # BT-5
    means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")  # BG-16
    _el(means, "ram:TypeCode", SEPA_CREDIT_TRANSFER if document.iban else PAYMENT_NOT_DEFINED)
    if document.iban:
        account = _el(means, "ram:PayeePartyCreditorFinancialAccount")
        _el(account, "ram:IBANID", document.iban)  # BT-84
        if document.bic:
            bank = _el(means, "ram:PayeeSpecifiedCreditorFinancialInstitution")
            _el(bank, "ram:BICID", document.bic)  # BT-86
    for tax in document.taxes:  # BG-23
        cat = category(tax.reason, tax.rate)
        node = _el(settlement, "ram:ApplicableTradeTax")
        _el(node, "ram:CalculatedAmount", _amount(tax.amount, cur))  # BT-117
        _el(node, "ram:TypeCode", "VAT")
        if cat.exemption_text:
            _el(node, "ram:ExemptionReason", cat.exemption_text)  # BT-120
        _el(node, "ram:BasisAmount", _amount(tax.basis, cur))  # BT-116
        _el(node, "ram:CategoryCode", cat.code)  # BT-118
        if cat.exemption_code:
            _el(node, "ram:ExemptionReasonCode", cat.exemption_code)  # BT-121
        if cat.code != "O":
            _el(node, "ram:RateApplicablePercent", _number(tax.rate))  # BT-119
    period = _el(settlement, "ram:BillingSpecifiedPeriod")  # BG-14
    _date(period, "ram:StartDateTime", document.period_start)
    _date(period, "ram:EndDateTime", document.period_end)
    if document.allowance:  # BG-20: credits applied, one per grant when they are named
        for label, value in document.allowances or [("Credits applied", document.allowance)]:
            allowance = _el(settlement, "ram:SpecifiedTradeAllowanceCharge")
            _el(_el(allowance, "ram:ChargeIndicator"), "udt:Indicator", "false")
            _el(allowance, "ram:ActualAmount", _amount(value, cur))  # BT-92
            _el(allowance, "ram:Reason", label)  # BT-97
            _trade_tax(_el(allowance, "ram:CategoryTradeTax"), reason, rate)
    terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
    _el(terms, "ram:Description", document.payment_terms)  # BT-20
    if document.due_date:
        _date(terms, "ram:DueDateDateTime", document.due_date)  # BT-9
    sums = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")  # BG-22
    _el(sums, "ram:LineTotalAmount", _amount(document.subtotal, cur))  # BT-106
    _el(sums, "ram:ChargeTotalAmount", _amount(Decimal(0), cur))  # BT-108
    _el(sums, "ram:AllowanceTotalAmount", _amount(document.allowance, cur))  # BT-107
    _el(sums, "ram:TaxBasisTotalAmount", _amount(document.subtotal - document.allowance, cur))
    if not out_of_scope:
        _el(sums, "ram:TaxTotalAmount", _amount(document.tax_total, cur), currencyID=cur)
    if document.tax_currency and document.tax_total_national is not None:  # BT-111
        _el(sums, "ram:TaxTotalAmount",
            _amount(document.tax_total_national, document.tax_currency),
            currencyID=document.tax_currency)  # fmt: skip
    _el(sums, "ram:GrandTotalAmount", _amount(document.total, cur))  # BT-112
    _el(sums, "ram:DuePayableAmount", _amount(document.total, cur))  # BT-115
    if document.preceding:  # BG-3
        number, issued = document.preceding
        reference = _el(settlement, "ram:InvoiceReferencedDocument")
        _el(reference, "ram:IssuerAssignedID", number)  # BT-25
        _date(reference, "ram:FormattedIssueDateTime", issued, kind="qdt")  # BT-26
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def facturx_pdf(pdf: bytes, xml: bytes, *, title: str, author: str, lang: str = "en") -> bytes:
    """``pdf`` (from ``pdf.render_*``: fonts embedded) as a Factur-X PDF/A-3: an sRGB output
    intent, ``xml`` embedded as ``factur-x.xml`` (relationship Data), the PDF/A-3b and
    Factur-X XMP metadata. The XML is checked against the Factur-X EN 16931 XSD first
    (``facturx`` raises on an invalid one)."""
    from facturx import generate_from_binary

    from .pdfa import with_output_intent

    return bytes(
        generate_from_binary(
            with_output_intent(pdf),
            xml,
            flavor="factur-x",
            level="en16931",
            check_xsd=True,
            pdf_metadata={
                "author": author,
                "keywords": "Factur-X, Invoice",
                "title": title,
                "subject": title,
            },
            lang=lang,
        )
    )


FORMATS = {
    "pdf": (".pdf", "application/pdf"),
    "facturx": (".pdf", "application/pdf"),
    "xrechnung": (".xml", "application/xml"),
}


def document_file(document: Invoice | CreditNote, fmt: str) -> tuple[str, bytes, str]:
    """(file name, bytes, media type) of ``document`` as ``fmt``: ``pdf`` (the printable
    PDF), ``facturx`` (``<number>.pdf``, PDF/A-3 with ``factur-x.xml``) or ``xrechnung``
    (``<number>.xml``, CII). Raises ``NoEInvoice`` (a ValueError) for the e-invoice of a
    draft (no number yet) or of a void invoice (no longer payable)."""
    from .pdf import render_document_pdf

    suffix, media_type = FORMATS[fmt]
    name = document.number or f"draft-{document.pk}"
    if fmt == "pdf":
        return f"{name}{suffix}", render_document_pdf(document), media_type
    edoc = document_of(document)
    if fmt == "xrechnung":
        return f"{name}{suffix}", cii_xml(edoc, profile="xrechnung"), media_type
    xml = cii_xml(edoc, profile="factur-x")
    kind = "Credit note" if isinstance(document, CreditNote) else "Invoice"
    pdf = facturx_pdf(
        render_document_pdf(document),
        xml,
        title=f"{kind} {document.number}",
        author=edoc.seller.name,
    )
    return f"{name}{suffix}", pdf, media_type
