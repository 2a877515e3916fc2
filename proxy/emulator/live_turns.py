"""The Live API's server messages for one turn, emulated: the model's answer as serverContent messages (text,
or 24 kHz PCM audio with its transcription), the usage Live reports, and a tool call when the user names a
declared function."""
import base64
import math
import struct

from . import replies

OUTPUT_AUDIO = "audio/pcm;rate=24000"
_OUTPUT_RATE = 24000  # samples a second, 16-bit mono, as Gemini's Live audio
_SECONDS_A_WORD = 0.1  # how long the emulated voice takes to say a word
AUDIO_TOKENS_A_SECOND = 25  # Gemini counts audio at 25 tokens a second


def field(message, name):
    """A field of a client message, by its JSON (camelCase) or proto (snake_case) name: Google takes both."""
    if not isinstance(message, dict):
        return None
    if name in message:
        return message[name]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return message.get(snake)


def modalities(setup):
    config = field(setup, "generationConfig") or {}
    return [str(m).upper() for m in (field(config, "responseModalities") or ["TEXT"])]


def audio_seconds(blob):
    """How long a base64 PCM chunk lasts, from its bytes and the rate in its MIME type (16 kHz unless named)."""
    data = field(blob, "data") or ""
    mime = str(field(blob, "mimeType") or "")
    rate = 16000
    if "rate=" in mime:
        try:
            rate = int(mime.split("rate=", 1)[1].split(";", 1)[0])
        except ValueError:
            pass
    size = len(data) * 3 // 4 - str(data).count("=")
    return max(0, size) / 2 / rate


def audio_tokens(seconds):
    return math.ceil(seconds * AUDIO_TOKENS_A_SECOND)


def _speech(text):
    """Deterministic PCM for a piece of text: a tone a word, its pitch drawn from the word."""
    frames = bytearray()
    count = int(_OUTPUT_RATE * _SECONDS_A_WORD)
    for word in text.split():
        pitch = 200 + sum(word.encode()) % 400
        frames += b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * pitch * n / _OUTPUT_RATE)))
                           for n in range(count))
    return bytes(frames)


def answer(model, setup, prompt, words_a_message, prompt_details):
    """The serverContent messages answering `prompt`, the last one with turnComplete and the turn's usage.
    `prompt_details`: the session's context so far, tokens by modality (Live counts the whole context)."""
    config = field(setup, "generationConfig") or {}
    text, _ = replies.answer_text(model, prompt, field(config, "maxOutputTokens"))
    words = text.split(" ")
    size = max(1, int(words_a_message))
    pieces = [" ".join(words[i:i + size]) + (" " if i + size < len(words) else "")
              for i in range(0, len(words), size)]
    spoken = "AUDIO" in modalities(setup)
    transcribe = field(setup, "outputAudioTranscription") is not None
    messages, response_tokens = [], 0
    for piece in pieces:
        if spoken:
            pcm = _speech(piece)
            response_tokens += audio_tokens(len(pcm) / 2 / _OUTPUT_RATE)
            part = {"inlineData": {"mimeType": OUTPUT_AUDIO, "data": base64.b64encode(pcm).decode()}}
        else:
            response_tokens += len(piece.split())  # a word a token, as the emulator counts generateContent
            part = {"text": piece}
        content = {"modelTurn": {"parts": [part]}}
        if spoken and transcribe:
            content["outputTranscription"] = {"text": piece}
        messages.append({"serverContent": content})
    messages.append({"serverContent": {"generationComplete": True}})
    messages.append({"serverContent": {"turnComplete": True},
                     "usageMetadata": usage(prompt_details, "AUDIO" if spoken else "TEXT", response_tokens)})
    return messages


def usage(prompt_details, response_modality, response_tokens):
    """Live's usage names: responseTokenCount and responseTokensDetails, not generateContent's candidates*."""
    prompt_tokens = sum(prompt_details.values())
    return {"promptTokenCount": prompt_tokens, "responseTokenCount": response_tokens,
            "totalTokenCount": prompt_tokens + response_tokens,
            "promptTokensDetails": [{"modality": m, "tokenCount": n} for m, n in prompt_details.items() if n],
            "responseTokensDetails": [{"modality": response_modality, "tokenCount": response_tokens}]}


def _declarations(setup):
    for tool in field(setup, "tools") or []:
        yield from field(tool, "functionDeclarations") or []


def _arguments(declaration):
    """Plausible arguments for a declared function: each parameter a value of its type."""
    schema = field(declaration, "parameters") or field(declaration, "parametersJsonSchema") or {}
    values = {"STRING": "emulated", "INTEGER": 1, "NUMBER": 1.5, "BOOLEAN": True, "ARRAY": [], "OBJECT": {}}
    return {name: values.get(str(field(prop, "type") or "STRING").upper(), "emulated")
            for name, prop in (field(schema, "properties") or {}).items()}


def tool_call(setup, text, number):
    """The toolCall message for the declared functions the user's text names, or None."""
    calls = [{"id": f"function-call-{number}-{index}", "name": declaration["name"], "args": _arguments(declaration)}
             for index, declaration in enumerate(_declarations(setup))
             if declaration.get("name") and declaration["name"] in text]
    return {"toolCall": {"functionCalls": calls}} if calls else None
