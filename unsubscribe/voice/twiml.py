"""A prompt as TwiML for Twilio Voice: <Say> in the prompt's languages inside a
<Gather> for one key (posting back even on silence), or followed by <Hangup/>."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from twilio.twiml.voice_response import VoiceResponse

from .models import VoiceCredential
from .prompts import SPEECH_LANGUAGE, ZH
from .services import Prompt


def action_url(*, tenant_slug: str, turn: int) -> str:
    # Absolute, from the public base: Twilio signs the URL it calls, and we check the
    # signature against PUBLIC_BASE_URL + path, as for SMS.
    path = reverse("voice:twilio-hook", kwargs={"tenant_slug": tenant_slug})
    return f"{settings.PUBLIC_BASE_URL}{path}?turn={turn}"


def render(prompt: Prompt, *, tenant_slug: str, credential: VoiceCredential) -> str:
    voices = {SPEECH_LANGUAGE[ZH]: credential.voice_zh}
    response = VoiceResponse()
    if prompt.hangup:
        target = response
    else:
        target = response.gather(
            input="dtmf",
            action=action_url(tenant_slug=tenant_slug, turn=prompt.turn),
            method="POST",
            timeout=prompt.timeout_seconds,
            num_digits=prompt.max_digits,
            action_on_empty_result=True,  # silence comes back to us, so it can be counted
        )
    for say in prompt.says:
        target.say(
            say.text, voice=voices.get(say.language, credential.voice_en) or None, language=say.language
        )
    if prompt.hangup:
        response.hangup()
    return str(response)
