"""Forms of the opt-out pages. Messages are translatable and shown next to their field."""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from django import forms
from django.utils.translation import gettext_lazy as _

from lanzuan import phones
from unsubscribe.models import Service
from unsubscribe.proofs.signed_receipt import MAX_RECEIPT_BYTES
from unsubscribe.references import clean_reference

# Country calling codes offered next to the number; anything else can be typed with "+".
COUNTRY_CODES: list[tuple[str, Any]] = [
    ("86", _("Chinese mainland (+86)")),
    ("852", _("Hong Kong, China (+852)")),
    ("853", _("Macao, China (+853)")),
    ("886", _("Taiwan, China (+886)")),
    ("1", _("United States / Canada (+1)")),
    ("44", _("United Kingdom (+44)")),
    ("65", _("Singapore (+65)")),
    ("60", _("Malaysia (+60)")),
    ("81", _("Japan (+81)")),
    ("82", _("South Korea (+82)")),
    ("61", _("Australia (+61)")),
]


def number_from_input(raw: str, country: str = "86") -> str:
    """What a person typed (and the country code they picked) → E.164.
    "+…" and "00…" are international whatever the picked code. Raises forms.ValidationError."""
    text = (raw or "").strip()
    if not text:
        raise forms.ValidationError(_("Enter your mobile number."), code="required")
    if not re.fullmatch(r"[0-9+()\-.\s]{3,32}", text):
        raise forms.ValidationError(
            _("Use digits only, for example 138 0013 8000 or +852 5123 4567."), code="invalid"
        )
    region = phonenumbers.region_code_for_country_code(int(country)) if country.isdigit() else "ZZ"
    try:
        return phones.normalise(text, region=None if region == "ZZ" else region)
    except phones.InvalidPhoneNumber:
        raise forms.ValidationError(
            _("That is not a valid mobile number. Check the digits and the country code."), code="invalid"
        ) from None


class NumberForm(forms.Form):
    country = forms.ChoiceField(
        label=_("Country or region"), choices=COUNTRY_CODES, initial="86", required=False
    )
    phone = forms.CharField(label=_("Mobile number"), max_length=32, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "phone" in data:
            try:
                data["e164"] = number_from_input(data["phone"], data.get("country") or "86")
            except forms.ValidationError as exc:
                self.add_error("phone", exc)
        return data


class CodeForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=12, required=False)

    def clean_code(self) -> str:
        code = re.sub(r"\s", "", self.cleaned_data.get("code") or "")
        if not re.fullmatch(r"\d{6}", code):
            raise forms.ValidationError(_("Enter the 6-digit code from the SMS."), code="invalid")
        return code


class ChoiceForm(forms.Form):
    scope = forms.ChoiceField(
        label=_("What to stop"),
        choices=[("all", _("All marketing")), ("some", _("Only the services I choose"))],
        initial="all",
    )
    services = forms.MultipleChoiceField(label=_("Services"), required=False, choices=())
    confirm = forms.BooleanField(
        label=_("I confirm"),
        required=True,
        error_messages={"required": _("Tick the box to confirm.")},
    )

    def __init__(self, *args: Any, services: list[Service], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service_rows = services
        self.fields["services"].choices = [(s.code, s.name) for s in services]  # type: ignore[attr-defined]
        if not services:
            self.fields["scope"].choices = [("all", _("All marketing"))]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("scope") == "some" and not data.get("services"):
            self.add_error("services", _("Choose at least one service, or choose all marketing."))
        return data

    def chosen_codes(self) -> list[str] | None:
        """Service codes to stop; None for everything."""
        if self.cleaned_data.get("scope") != "some":
            return None
        return list(self.cleaned_data.get("services") or []) or None


class StatusForm(forms.Form):
    reference = forms.CharField(label=_("Reference"), max_length=20, required=False)
    phone = forms.CharField(label=_("Mobile number"), max_length=32, required=False)

    def clean_reference(self) -> str:
        reference = clean_reference(self.cleaned_data.get("reference") or "")
        if len(reference) != 9:
            raise forms.ValidationError(
                _("Enter the 8-character reference from your receipt, e.g. K7M2-9QXP."), code="invalid"
            )
        return reference

    def clean_phone(self) -> str:
        return number_from_input(self.cleaned_data.get("phone") or "")


class HubChoiceForm(forms.Form):
    providers = forms.MultipleChoiceField(label=_("Providers"), required=True, choices=())
    confirm = forms.BooleanField(
        label=_("I confirm"), required=True, error_messages={"required": _("Tick the box to confirm.")}
    )

    def __init__(self, *args: Any, providers: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["providers"].choices = providers  # type: ignore[attr-defined]
        self.fields["providers"].error_messages["required"] = _("Choose at least one provider.")


class VerifyForm(forms.Form):
    """/verify/: a receipt pasted (the file's content or its compact text) or uploaded."""

    receipt = forms.CharField(
        label=_("Paste the receipt"),
        required=False,
        strip=True,
        max_length=MAX_RECEIPT_BYTES * 2,
        widget=forms.Textarea,
        error_messages={"max_length": _("This is far longer than any receipt.")},
    )
    file = forms.FileField(label=_("or upload the receipt file"), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            if upload.size is not None and upload.size > MAX_RECEIPT_BYTES:
                self.add_error("file", _("This file is far larger than any receipt."))
                return data
            try:
                data["text"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("file", _("This file is not a receipt: it is not text."))
                return data
        else:
            data["text"] = data.get("receipt") or ""
        if not data["text"].strip() and not self.errors:
            raise forms.ValidationError(
                _("Paste the receipt's text or choose the receipt file."), code="required"
            )
        return data
