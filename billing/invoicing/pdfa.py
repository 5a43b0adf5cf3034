"""What a PDF needs beyond what reportlab writes to be PDF/A-3 (ISO 19005-3): an output
intent with an ICC profile (sRGB). Fonts are embedded by ``pdf.py`` (TrueType, subset); the
XMP metadata and the embedded XML are added by the ``factur-x`` library."""

from functools import cache
from io import BytesIO

from PIL import ImageCms
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)


@cache
def srgb_profile() -> bytes:
    """An sRGB ICC profile (little CMS through Pillow; no file shipped)."""
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def with_output_intent(pdf: bytes) -> bytes:
    """``pdf`` with a PDF/A output intent (GTS_PDFA1, sRGB IEC61966-2.1) in its catalog."""
    writer = PdfWriter(clone_from=PdfReader(BytesIO(pdf)))
    profile = DecodedStreamObject()
    profile.set_data(srgb_profile())
    profile.update({NameObject("/N"): NumberObject(3)})
    profile_ref = writer._add_object(profile.flate_encode())
    intent = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/OutputIntent"),
            NameObject("/S"): NameObject("/GTS_PDFA1"),
            NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB IEC61966-2.1"),
            NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
            NameObject("/DestOutputProfile"): profile_ref,
        }
    )
    writer._root_object[NameObject("/OutputIntents")] = ArrayObject([writer._add_object(intent)])
    out = BytesIO()
    writer.write(out)
    return out.getvalue()
