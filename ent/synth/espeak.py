"""A small binding to the eSpeak NG speech synthesizer.

Two back ends produce the same kind of result, 16-bit audio at eSpeak's native
rate (22050 Hz) returned as float32 in ``[-1, 1)``:

* ``ctypes`` (primary): calls ``libespeak-ng`` shipped by the PyPI package
  ``espeakng-loader`` (``espeakng_loader.get_library_path()`` and
  ``get_data_path()``), in synchronous mode with an audio callback.
* ``program``: runs the ``espeak-ng`` program found on ``PATH`` once per
  request and reads the WAV file it writes.

``backend="auto"`` picks ``ctypes`` when ``espeakng_loader`` imports, else the
program.

Prosody control. Rate (words per minute), pitch (0-99), amplitude and word
gap (units of 10 ms at the default rate) are engine parameters. The pitch
*range* is set with SSML ``<prosody range="N">`` (N on eSpeak's 0-100 scale,
50 = the voice's normal range): eSpeak NG 1.51's program has no pitch-range
flag, and using SSML keeps both back ends identical.

Amplitude. eSpeak's amplitude is a linear gain, but its wave generator
saturates: its automatic gain control squashes samples that would overflow
16 bits, and resampling then overshoots full scale. Measured over eight
English accents times variants ``m1``-``m8``, ``f1``-``f5`` at pitches 10-99
and ranges 0-100: typical voices peak near 0.8 of full scale at amplitude
100 (and clip at 150), but the loudest combinations (low pitch, wide range)
already peak at 0.99 at amplitude 80. Requests are therefore capped at
:data:`MAX_AMPLITUDE` (64), which keeps the worst measured peak near 0.8.

Reproducibility (ctypes). The library keeps synthesis state in static
variables (pitch flutter phase, roughness cycle counter, automatic gain,
left-over samples of the last pitch period, a random generator seeded from
the clock): the same request gives different samples depending on what the
process synthesized before. With ``fresh_state=True`` (default) the library
is loaded anew for every request (about 2 ms) and its random generator is
seeded from :attr:`SynthesisParams.seed`, so the output depends only on the
request. The library image is loaded from a private in-memory copy
(``memfd``) so that no other user of ``libespeak-ng`` in the process shares
(and keeps alive) its state. Every process (e.g. a multiprocessing worker)
loads its own copy on first use; calls are serialized with a lock because the
library is not thread-safe.
"""

from __future__ import annotations

import ctypes
import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional, Tuple
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

ESPEAK_SAMPLE_RATE = 22050
"""eSpeak NG's native output sample rate in Hz."""

MAX_AMPLITUDE = 64
"""Requested amplitudes above this are capped (see the module docstring)."""

MIN_RATE, MAX_RATE = 80, 450
BACKENDS = ("auto", "ctypes", "program")

# espeak_PARAMETER values from speak_lib.h.
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_WORDGAP = 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SSML = 0x10
_BUFFER_MS = 200

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(RuntimeError):
    """eSpeak NG is missing or failed on a request."""


@dataclass(frozen=True)
class SynthesisParams:
    """One synthesis request's voice and prosody.

    Attributes:
        voice: eSpeak voice name, optionally with a variant, e.g. ``"en-us"``,
            ``"en-gb-x-rp+f3"``.
        rate: Speaking rate in words per minute, 80 to 450.
        pitch: Base pitch, 0 to 99 (50 = the voice's normal pitch).
        pitch_range: Pitch range, 0 to 100 (50 = normal; 0 = monotone),
            applied with SSML ``<prosody range>``.
        amplitude: Loudness, 0 and up; values above :data:`MAX_AMPLITUDE`
            are capped.
        word_gap: Extra pause between words in units of 10 ms (at the
            default rate), 0 and up.
        seed: Seed of eSpeak's random generator (breath noise of breathy
            variants such as ``f2``); honoured by the ctypes back end.
    """

    voice: str = "en-us"
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    amplitude: int = 60
    word_gap: int = 0
    seed: int = 0

    def validated(self) -> "SynthesisParams":
        """Check the ranges and return a copy with the amplitude capped.

        Raises:
            ValueError: If a value is out of range or the voice name is unsafe.
        """
        if not self.voice or self.voice[0] == "-" or any(c.isspace() or c in "<>\"'&" for c in self.voice):
            raise ValueError(f"bad eSpeak voice name {self.voice!r}")
        checks = (
            ("rate", self.rate, MIN_RATE, MAX_RATE),
            ("pitch", self.pitch, 0, 99),
            ("pitch_range", self.pitch_range, 0, 100),
            ("amplitude", self.amplitude, 0, None),
            ("word_gap", self.word_gap, 0, None),
        )
        for name, value, low, high in checks:
            if not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < low or (high is not None and value > high):
                raise ValueError(f"{name}={value} is outside [{low}, {high if high is not None else 'inf'}]")
        return replace(self, amplitude=min(int(self.amplitude), MAX_AMPLITUDE))


def build_ssml(text: str, pitch_range: int, is_ssml: bool = False) -> str:
    """Wrap text in an SSML document that sets the pitch range.

    Args:
        text: Plain text (escaped here), or an SSML fragment without a
            ``<speak>`` element when ``is_ssml`` is true.
        pitch_range: eSpeak pitch range, 0 to 100.
        is_ssml: Whether ``text`` already is SSML markup.

    Returns:
        ``<speak><prosody range="N">...</prosody></speak>``.
    """
    if is_ssml:
        if "<speak" in text:
            raise ValueError("pass an SSML fragment without the <speak> element")
        body = text
    else:
        body = escape(text)
    return f'<speak><prosody range="{int(pitch_range)}">{body}</prosody></speak>'


def ctypes_backend_available() -> bool:
    """Whether the ``espeakng_loader`` package (and so the library) is installed."""
    return importlib.util.find_spec("espeakng_loader") is not None


def program_backend_available() -> bool:
    """Whether the ``espeak-ng`` program is on ``PATH``."""
    return shutil.which("espeak-ng") is not None


def resolve_backend(backend: str) -> str:
    """Map ``"auto"`` to a concrete back end and check that it is usable.

    Raises:
        ValueError: On an unknown back end name.
        EspeakError: If the chosen back end is not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown eSpeak back end {backend!r}; choose from {BACKENDS}")
    if backend == "auto":
        if ctypes_backend_available():
            return "ctypes"
        if program_backend_available():
            return "program"
        raise EspeakError("eSpeak NG not found: install 'espeakng-loader' (pip) or the espeak-ng program")
    if backend == "ctypes" and not ctypes_backend_available():
        raise EspeakError("the ctypes back end needs the 'espeakng-loader' package")
    if backend == "program" and not program_backend_available():
        raise EspeakError("the program back end needs 'espeak-ng' on PATH")
    return backend


class _CtypesEngine:
    """Owns one process's handle on libespeak-ng (see the module docstring)."""

    def __init__(self, fresh_state: bool) -> None:
        import espeakng_loader  # imported lazily: optional dependency

        self._fresh_state = fresh_state
        self._lib_path = espeakng_loader.get_library_path()
        self._data_path = espeakng_loader.get_data_path().encode()
        self._lock = threading.Lock()
        self._chunks: List[np.ndarray] = []
        self._callback = _SynthCallback(self._on_audio)
        self._pid: Optional[int] = None
        self._image_path: Optional[str] = None
        self._image_fd: Optional[int] = None
        self._lib: Optional[ctypes.CDLL] = None

    def _on_audio(self, wav: "ctypes._Pointer", num_samples: int, events: Optional[int]) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def _image(self) -> str:
        """Path of this process's private copy of the library."""
        if self._pid != os.getpid():
            # A forked child must not reuse its parent's handle or image (the
            # parent may hold the library loaded from it, state and all).
            if self._pid is not None and self._image_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._image_fd)
            self._lib = None
            self._image_path = None
            self._image_fd = None
            self._pid = os.getpid()
        if self._image_path is None:
            if hasattr(os, "memfd_create"):
                fd = os.memfd_create("libespeak-ng", os.MFD_CLOEXEC)
                with open(self._lib_path, "rb") as fh:
                    os.write(fd, fh.read())
                self._image_fd = fd
                self._image_path = f"/proc/self/fd/{fd}"
            else:  # no memfd: load the package's file itself
                self._image_path = self._lib_path
        return self._image_path

    def _open(self) -> ctypes.CDLL:
        lib = ctypes.CDLL(self._image())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, self._data_path, _INITIALIZE_DONT_EXIT
        )
        if rate != ESPEAK_SAMPLE_RATE:
            raise EspeakError(f"espeak_Initialize returned {rate} (expected {ESPEAK_SAMPLE_RATE} Hz)")
        lib.espeak_SetSynthCallback(self._callback)
        return lib

    def _close(self, lib: ctypes.CDLL) -> None:
        import _ctypes

        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)

    def synthesize(self, ssml: str, params: SynthesisParams) -> np.ndarray:
        """Synthesize an SSML document; returns int16 samples at 22050 Hz."""
        with self._lock:
            self._image()
            lib = self._lib if (self._lib is not None and not self._fresh_state) else self._open()
            try:
                return self._run(lib, ssml, params)
            finally:
                if self._fresh_state:
                    self._close(lib)
                else:
                    self._lib = lib

    def _run(self, lib: ctypes.CDLL, ssml: str, params: SynthesisParams) -> np.ndarray:
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed(int(params.seed) & 0x7FFFFFFF)
        status = lib.espeak_SetVoiceByName(params.voice.encode())
        if status != 0:
            raise EspeakError(f"unknown eSpeak voice {params.voice!r} (error {status})")
        for param, value in (
            (_PARAM_RATE, params.rate),
            (_PARAM_VOLUME, params.amplitude),
            (_PARAM_PITCH, params.pitch),
            (_PARAM_WORDGAP, params.word_gap),
        ):
            status = lib.espeak_SetParameter(param, int(value), 0)
            if status != 0:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed (error {status})")
        data = ssml.encode("utf-8") + b"\0"
        self._chunks = []
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _SSML, None, None)
        if status != 0:
            raise EspeakError(f"espeak_Synth failed (error {status}) on {ssml!r}")
        lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


class _ProgramEngine:
    """Runs ``espeak-ng`` once per request."""

    def __init__(self, executable: str = "espeak-ng") -> None:
        found = shutil.which(executable)
        if found is None:
            raise EspeakError(f"'{executable}' not found on PATH")
        self._exe = found

    def synthesize(self, ssml: str, params: SynthesisParams) -> np.ndarray:
        """Synthesize an SSML document; returns int16 samples at 22050 Hz."""
        with tempfile.TemporaryDirectory(prefix="ent-espeak-") as tmp:
            out = Path(tmp) / "out.wav"
            cmd = [
                self._exe, "-v", params.voice, "-s", str(params.rate), "-p", str(params.pitch),
                "-a", str(params.amplitude), "-g", str(params.word_gap), "-b", "1", "-m",
                "-w", str(out), "--stdin",
            ]
            proc = subprocess.run(cmd, input=ssml.encode("utf-8"), capture_output=True, check=False)
            if proc.returncode != 0 or not out.exists():
                err = proc.stderr.decode("utf-8", "replace").strip()
                raise EspeakError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {err}")
            audio, rate = sf.read(str(out), dtype="int16", always_2d=False)
        if rate != ESPEAK_SAMPLE_RATE:
            raise EspeakError(f"espeak-ng wrote {rate} Hz audio (expected {ESPEAK_SAMPLE_RATE})")
        if audio.ndim != 1:
            raise EspeakError("espeak-ng wrote multi-channel audio")
        return audio


class EspeakSynthesizer:
    """Text (or SSML) to float32 audio with eSpeak NG.

    Example:
        >>> synth = EspeakSynthesizer()
        >>> audio, rate = synth.synthesize("hello world", SynthesisParams(voice="en-us+f2"))

    Args:
        backend: ``"auto"``, ``"ctypes"`` or ``"program"``.
        fresh_state: ctypes only: reload the library for every request so
            the output does not depend on earlier requests (see the module
            docstring). ``False`` keeps one loaded library per process.
    """

    def __init__(self, backend: str = "auto", fresh_state: bool = True) -> None:
        self.backend = resolve_backend(backend)
        self.sample_rate = ESPEAK_SAMPLE_RATE
        self._engine: "_CtypesEngine | _ProgramEngine"
        if self.backend == "ctypes":
            self._engine = _CtypesEngine(fresh_state)
        else:
            self._engine = _ProgramEngine()

    def synthesize(
        self, text: str, params: SynthesisParams, is_ssml: bool = False
    ) -> Tuple[np.ndarray, int]:
        """Synthesize one utterance.

        Args:
            text: Plain text, or an SSML fragment (no ``<speak>`` element)
                when ``is_ssml`` is true. Sentence punctuation shapes the
                intonation (``?`` rises).
            params: Voice and prosody; the amplitude is capped at
                :data:`MAX_AMPLITUDE`.
            is_ssml: Whether ``text`` contains SSML markup.

        Returns:
            ``(audio, sample_rate)``: audio (T,) float32 in ``[-1, 1)`` and
            the rate in Hz (22050).

        Raises:
            ValueError: On out-of-range parameters or empty text.
            EspeakError: If eSpeak fails (e.g. unknown voice).
        """
        if not text.strip():
            raise ValueError("cannot synthesize empty text")
        params = params.validated()
        ssml = build_ssml(text, params.pitch_range, is_ssml=is_ssml)
        samples = self._engine.synthesize(ssml, params)
        return samples.astype(np.float32) / np.float32(32768.0), self.sample_rate


_PROCESS_SYNTHESIZERS: "dict[Tuple[int, str, bool], EspeakSynthesizer]" = {}


def get_synthesizer(backend: str = "auto", fresh_state: bool = True) -> EspeakSynthesizer:
    """This process's shared synthesizer for ``backend`` (created on first use).

    Safe to call in multiprocessing workers: each process gets its own
    instance (the cache is keyed by process id).
    """
    key = (os.getpid(), backend, fresh_state)
    synth = _PROCESS_SYNTHESIZERS.get(key)
    if synth is None:
        synth = EspeakSynthesizer(backend, fresh_state)
        _PROCESS_SYNTHESIZERS[key] = synth
    return synth

