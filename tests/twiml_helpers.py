"""A TwiML validator for the voice webhooks: only Twilio's documented verbs and attributes.

Allowed: <Response>, <Say> (voice, language, loop), <Gather> (input, action, method, timeout,
numDigits, finishOnKey, actionOnEmptyResult, language), <Hangup>, <Redirect> (method) and
<Pause> (length), with the values and nesting Twilio documents
(https://www.twilio.com/docs/voice/twiml). Every TwiML answer in tests/test_voice.py goes
through `validate_twiml`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

ATTRIBUTES: dict[str, frozenset[str]] = {
    "Response": frozenset(),
    "Say": frozenset({"voice", "language", "loop"}),
    "Gather": frozenset(
        {
            "input",
            "action",
            "method",
            "timeout",
            "numDigits",
            "finishOnKey",
            "actionOnEmptyResult",
            "language",
        }
    ),
    "Hangup": frozenset(),
    "Redirect": frozenset({"method"}),
    "Pause": frozenset({"length"}),
}
# What each verb may contain: <Gather> nests <Say> and <Pause>; the others nest no verb.
CHILDREN: dict[str, frozenset[str]] = {
    "Response": frozenset({"Say", "Gather", "Hangup", "Redirect", "Pause"}),
    "Gather": frozenset({"Say", "Pause"}),
    "Say": frozenset(),
    "Hangup": frozenset(),
    "Redirect": frozenset(),
    "Pause": frozenset(),
}
_LANGUAGE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}$")  # e.g. zh-CN, en-US
_DIGITS_KEYS = re.compile(r"^[0-9#*]?$")


class InvalidTwiML(AssertionError):
    pass


def _fail(message: str) -> None:
    raise InvalidTwiML(message)


def _positive_int(value: str, name: str, *, zero: bool = False) -> None:
    if not value.isdigit() or (int(value) == 0 and not zero):
        _fail(f"{name}={value!r} is not a {'non-negative' if zero else 'positive'} integer")


def _check_attributes(element: ET.Element) -> None:
    tag, attrs = element.tag, element.attrib
    unknown = set(attrs) - ATTRIBUTES[tag]
    if unknown:
        _fail(f"<{tag}> has undocumented attributes {sorted(unknown)}")
    if "language" in attrs and not _LANGUAGE.match(attrs["language"]):
        _fail(f"<{tag} language={attrs['language']!r}> is not a language-locale tag")
    if "method" in attrs and attrs["method"] not in {"GET", "POST"}:
        _fail(f"<{tag} method={attrs['method']!r}>")
    if tag == "Say":
        if "loop" in attrs:
            _positive_int(attrs["loop"], "loop", zero=True)
        if "voice" in attrs and not attrs["voice"]:
            _fail("<Say voice=''>")
        if not (element.text or "").strip():
            _fail("<Say> says nothing")
    elif tag == "Gather":
        if attrs.get("input", "dtmf") not in {"dtmf", "speech", "dtmf speech"}:
            _fail(f"<Gather input={attrs['input']!r}>")
        for name in ("timeout", "numDigits"):
            if name in attrs:
                _positive_int(attrs[name], name)
        if "finishOnKey" in attrs and not _DIGITS_KEYS.match(attrs["finishOnKey"]):
            _fail(f"<Gather finishOnKey={attrs['finishOnKey']!r}>")
        if attrs.get("actionOnEmptyResult", "false") not in {"true", "false"}:
            _fail(f"<Gather actionOnEmptyResult={attrs['actionOnEmptyResult']!r}>")
        if "action" in attrs and not attrs["action"]:
            _fail("<Gather action=''>")
    elif tag == "Pause":
        if "length" in attrs:
            _positive_int(attrs["length"], "length")
    elif tag == "Redirect":
        if not (element.text or "").strip():
            _fail("<Redirect> without a URL")
    elif tag == "Hangup" and (element.text or "").strip():
        _fail("<Hangup> with text")


def _check(element: ET.Element, parent: str | None) -> None:
    if element.tag not in ATTRIBUTES:
        _fail(f"<{element.tag}> is not an allowed TwiML verb")
    if parent is not None and element.tag not in CHILDREN[parent]:
        _fail(f"<{element.tag}> cannot be nested in <{parent}>")
    _check_attributes(element)
    for child in element:
        _check(child, element.tag)


def validate_twiml(body: bytes | str) -> ET.Element:
    """Parse TwiML and check it against the allowed verbs; returns the <Response> element."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise InvalidTwiML(f"not XML: {exc}") from None
    if root.tag != "Response":
        _fail(f"the root is <{root.tag}>, not <Response>")
    _check(root, None)
    verbs = [child.tag for child in root]
    if "Hangup" in verbs and verbs.index("Hangup") != len(verbs) - 1:
        _fail("verbs after <Hangup> are never reached")
    return root


def spoken(root: ET.Element) -> str:
    """Everything the caller hears, in order."""
    return " ".join((say.text or "").strip() for say in root.iter("Say"))
