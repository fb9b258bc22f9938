"""Engine steps and call moments -> TwiML, built with twilio's ``VoiceResponse`` (never by hand).

Every ``<Say>`` names its language (``ivr.say_language``: en-US / cmn-CN by default) so Twilio's
text-to-speech reads Mandarin prompts as Mandarin. Prompts sit inside ``<Gather>`` so a caller who
knows the menu can press a key without listening to the end.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields
from xml.sax.saxutils import escape

from twilio.twiml.voice_response import VoiceResponse

from ivr.config import IvrConfig, Prompt
from ivr.engine import (
    Callback,
    Enqueue,
    GatherSpec,
    Hangup,
    Play,
    RecordComplaint,
    Say,
    Step,
    Utterance,
    Voicemail,
)


@dataclass(frozen=True)
class StepUrls:
    """Where Twilio should go next; the webhooks build these (with their CallSid-scoped tokens)."""

    gather: str  # the Gather action (input for the node the step waits at)
    wait: str  # the queue wait loop, after an Enqueue
    voicemail_done: str  # the Record action, after a voicemail
    recording_status: str | None = None  # recording status callback
    complaint_recorded: str | None = None  # the Record action, after a complaint's description
    complaint_empty: str | None = None  # where Twilio goes on when that recording was empty
    complaint_transcript: str | None = None  # Twilio's transcription callback for that recording


def _say(verb, config: IvrConfig, text: str, language: str) -> None:
    voice = config.voice.get(language)
    verb.say(text, language=config.say_language[language], **({"voice": voice} if voice else {}))


def add_utterances(verb, config: IvrConfig, prompts: tuple[Utterance, ...] | list[Utterance]) -> None:
    """Append ``<Say>``/``<Play>`` for each prompt to ``verb`` (a VoiceResponse or a Gather)."""
    for prompt in prompts:
        if isinstance(prompt, Say):
            _say(verb, config, prompt.text, prompt.language)
        elif isinstance(prompt, Play):
            verb.play(prompt.url)


def _gather(response: VoiceResponse, config: IvrConfig, spec: GatherSpec, action: str):
    options = {"input": " ".join(spec.input), "action": action, "method": "POST", "timeout": spec.timeout_s,
               "action_on_empty_result": True}
    if spec.num_digits:
        options["num_digits"] = spec.num_digits
    if "dtmf" in spec.input:
        options["finish_on_key"] = spec.finish_on_key
    if "speech" in spec.input:
        options["language"] = config.speech_language[spec.language]
        options["speech_timeout"] = "auto"
        if spec.hints:
            options["hints"] = ", ".join(spec.hints)
    return response.gather(**options)


def render_step(step: Step, config: IvrConfig, urls: StepUrls) -> VoiceResponse:
    """The TwiML for one engine step: prompts inside a Gather, or prompts then the action's verbs."""
    response = VoiceResponse()
    language = step.state.language
    if step.gather is not None:
        add_utterances(_gather(response, config, step.gather, urls.gather), config, step.prompts)
        return response
    add_utterances(response, config, step.prompts)
    action = step.action
    if isinstance(action, Enqueue):
        response.redirect(urls.wait, method="POST")
    elif isinstance(action, Voicemail):
        _record(response, config, action.max_length_s, urls)
    elif isinstance(action, Callback):
        response.hangup()
    elif isinstance(action, RecordComplaint):
        _record_complaint(response, action, urls)
    elif isinstance(action, Hangup):
        _say(response, config, config.messages.goodbye.text(language), language)
        response.hangup()
    else:
        raise TypeError("a step without a gather must carry an action")
    return response


def _record(response: VoiceResponse, config: IvrConfig, max_length_s: int, urls: StepUrls) -> None:
    options = {"action": urls.voicemail_done, "method": "POST", "max_length": max_length_s, "play_beep": True,
               "finish_on_key": "#", "timeout": 10}
    if urls.recording_status:
        options["recording_status_callback"] = urls.recording_status
        options["recording_status_callback_method"] = "POST"
    response.record(**options)


def _record_complaint(response: VoiceResponse, action: RecordComplaint, urls: StepUrls) -> None:
    if not urls.complaint_recorded:
        raise ValueError("a complaint recording needs the complaint_recorded URL")
    options = {"action": urls.complaint_recorded, "method": "POST", "max_length": action.max_length_s,
               "play_beep": True, "finish_on_key": "#", "timeout": 10}
    if action.transcribe and urls.complaint_transcript:
        options.update(transcribe=True, transcribe_callback=urls.complaint_transcript)
    response.record(**options)
    if urls.complaint_empty:  # Twilio skips the action for an empty recording and reads on
        response.redirect(urls.complaint_empty, method="POST")


def render_wait(config: IvrConfig, language: str, *, key_action: str, wait_url: str,
                position: int | None, ewt_s: int | None, announce: bool) -> VoiceResponse:
    """One turn of the queue wait loop: (position and wait,) the key options, hold music, and back.

    A key press posts to ``key_action``; without one Twilio falls through to the redirect and the
    loop asks again, so each turn lasts about one hold-music clip (or ``announce_every_s`` of pause)."""
    waiting = config.waiting
    response = VoiceResponse()
    gather = response.gather(input="dtmf", num_digits=1, action=key_action, method="POST", timeout=1)
    if announce and position is not None:
        _say(gather, config, waiting.position.text(language).format(position=position), language)
        if ewt_s is not None:
            _say(gather, config, wait_sentence(config, language, ewt_s), language)
    if announce:
        _say(gather, config, waiting.options.text(language), language)
    if waiting.hold_music_url:
        gather.play(waiting.hold_music_url)
    else:
        gather.pause(length=waiting.announce_every_s)
    response.redirect(wait_url, method="POST")
    return response


def wait_sentence(config: IvrConfig, language: str, ewt_s: int) -> str:
    """'about N minutes' rounded up, or the under-a-minute sentence."""
    if ewt_s < 60:
        return config.waiting.wait_short.text(language)
    minutes = -(-ewt_s // 60)
    return config.waiting.wait.text(language).format(minutes=minutes)


def render_voicemail(config: IvrConfig, language: str, urls: StepUrls, prompt: Prompt | None = None,
                     max_length_s: int | None = None) -> VoiceResponse:
    """Ask for a message and record it (from the wait loop's voicemail key)."""
    response = VoiceResponse()
    _say(response, config, (prompt or config.waiting.voicemail_prompt).text(language), language)
    _record(response, config, max_length_s or config.waiting.voicemail_max_length_s, urls)
    return response


def render_message(config: IvrConfig, language: str, prompt: Prompt, *, hangup: bool = True) -> VoiceResponse:
    """Say one prompt, then hang up (callback confirmed, voicemail saved, goodbye)."""
    response = VoiceResponse()
    _say(response, config, prompt.text(language), language)
    if hangup:
        response.hangup()
    return response


def render_apology(config: IvrConfig, language: str = "en") -> VoiceResponse:
    """The polite answer to a request the desk cannot serve: apologise and hang up."""
    return render_message(config, language if language in ("en", "zh") else "en", config.messages.apology)


def render_connect(config: IvrConfig, language: str, *, client_identity: str | None = None,
                   number: str | None = None, caller_id: str | None = None, action: str | None = None,
                   record: bool = False, recording_status: str | None = None,
                   announce: Prompt | None = None, interaction_id: int | None = None) -> VoiceResponse:
    """Bridge the caller to an agent: the browser softphone (``<Client>``) or the agent's phone
    (``<Number>``). Exactly one of ``client_identity`` / ``number`` must be given. For the softphone
    the call carries ``interaction_id`` as a custom parameter, so the console answers the call that
    belongs to the offer the agent accepted."""
    if (client_identity is None) == (number is None):
        raise ValueError("give exactly one of client_identity or number")
    response = VoiceResponse()
    _say(response, config, (announce or config.waiting.connecting).text(language), language)
    options: dict = {"answer_on_bridge": True}
    if action:
        options.update(action=action, method="POST")
    if caller_id:
        options["caller_id"] = caller_id
    if record:
        options["record"] = "record-from-answer-dual"
        if recording_status:
            options.update(recording_status_callback=recording_status, recording_status_callback_method="POST")
    dial = response.dial(**options)
    if client_identity is not None and interaction_id is not None:
        client = dial.client()
        client.identity(client_identity)
        client.parameter(name="interaction_id", value=str(interaction_id))
    elif client_identity is not None:
        dial.client(client_identity)
    else:
        dial.number(number)
    return response


# --- memoised rendering (the webhooks' hot path) -----------------------------------------------------------
#
# A menu prompt is the same XML for every caller at the same node, language and attempt; only the URLs
# Twilio is sent to next differ (the step number, the wait loop's turn). So each shape is built once with
# VoiceResponse -- with a mark where each URL goes -- and then filled in with the request's URLs.

_MARK = "\ue000"  # private-use character: in no prompt, and written as it is by the XML serialiser
MEMO_SIZE = 1024  # shapes kept (read-backs of orders and positions vary: the memo starts over when full)
_templates: dict[Hashable, _Template] = {}


class Prebuilt(VoiceResponse):
    """A response whose XML VoiceResponse built before (for an earlier caller) with other URLs: it is
    given out as that XML and takes no more verbs."""

    def __init__(self, xml: str):
        super().__init__()
        self._xml = xml

    def to_xml(self, xml_declaration: bool = True) -> str:
        return self._xml if xml_declaration else self._xml.split("?>", 1)[1]

    def nest(self, verb):
        raise TypeError("a prebuilt response takes no more verbs; render it afresh instead")


class _Template:
    """One rendered shape: its XML split at the URL marks (odd parts name the URL that goes there)."""

    __slots__ = ("config", "parts")

    def __init__(self, config: IvrConfig, xml: str):
        self.config = config
        self.parts = xml.split(_MARK)

    def fill(self, urls: dict[str, str]) -> Prebuilt:
        parts = self.parts.copy()
        for index in range(1, len(parts), 2):
            parts[index] = escape(urls[parts[index]], {'"': "&quot;"})  # as the serialiser escapes attributes
        return Prebuilt("".join(parts))


def _marked(name: str) -> str:
    return f"{_MARK}{name}{_MARK}"


def _memoised(config: IvrConfig, key: Hashable, build: Callable[[], VoiceResponse]) -> _Template:
    template = _templates.get(key)
    if template is None or template.config is not config:
        if len(_templates) >= MEMO_SIZE:
            _templates.clear()
        template = _templates[key] = _Template(config, str(build()))
    return template


def memoised_step(step: Step, config: IvrConfig, urls: StepUrls) -> VoiceResponse:
    """``render_step``'s TwiML, built with VoiceResponse once per shape (prompts, gather or action,
    language, which URLs are given) and filled in with ``urls``: the same XML, without building and
    serialising the tree again for every caller."""
    given = {field.name: getattr(urls, field.name) for field in fields(StepUrls)}
    key = ("step", id(config), step.state.language, step.prompts, step.gather, step.action,
           tuple(url is None for url in given.values()))
    marked = StepUrls(**{name: None if url is None else _marked(name) for name, url in given.items()})
    return _memoised(config, key, lambda: render_step(step, config, marked)).fill(given)


def memoised_wait(config: IvrConfig, language: str, *, key_action: str, wait_url: str,
                  position: int | None, ewt_s: int | None, announce: bool) -> VoiceResponse:
    """``render_wait``'s TwiML, built with VoiceResponse once per shape and filled in with the turn's URLs."""
    key = ("wait", id(config), language, position, ewt_s, announce)
    template = _memoised(config, key, lambda: render_wait(
        config, language, key_action=_marked("key_action"), wait_url=_marked("wait_url"), position=position,
        ewt_s=ewt_s, announce=announce))
    return template.fill({"key_action": key_action, "wait_url": wait_url})
