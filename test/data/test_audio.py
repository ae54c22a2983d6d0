"""Audio loading: resampling, down-mixing, segment cuts and one-line errors."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datadir_factory import write_tone
from ent.data.audio import AudioError, AudioInfo, audio_info, load_audio
from ent.utils.errors import DataError


def sine(freq: float, duration: float, sr: int) -> np.ndarray:
    t = np.arange(int(round(duration * sr))) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


def test_audio_info(tmp_path):
    path = tmp_path / "a.wav"
    write_tone(path, 1.5, sample_rate=8000, channels=2)
    info = audio_info(path)
    assert info == AudioInfo(8000, 2, 12000)
    assert info.duration == 1.5


def test_16khz_mono_is_read_as_is(tmp_path):
    path = tmp_path / "a.wav"
    written = write_tone(path, 0.5)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.shape == (8000,)
    np.testing.assert_allclose(wave, written, atol=1 / 32768)


def test_8khz_is_resampled_to_16khz(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(str(path), sine(1000.0, 1.0, 8000), 8000, subtype="FLOAT")
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.shape == (16000,)
    assert peak_hz(wave, 16000) == pytest.approx(1000.0, abs=2.0)
    # The sine keeps its amplitude, and nothing appears above the old Nyquist rate.
    assert np.abs(wave[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    freqs = np.fft.rfftfreq(len(wave), 1 / 16000)
    assert spectrum[freqs > 4100].max() < 1e-3 * spectrum.max()


def test_44khz_is_resampled_with_the_right_length(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(str(path), sine(440.0, 0.7, 44100), 44100, subtype="FLOAT")
    wave = load_audio(path)
    assert wave.shape == (round(0.7 * 44100 * 16000 / 44100),)
    assert peak_hz(wave, 16000) == pytest.approx(440.0, abs=2.0)


def test_stereo_is_downmixed_to_the_channel_mean(tmp_path):
    path = tmp_path / "a.wav"
    left, right = sine(300.0, 0.5, 16000), sine(700.0, 0.5, 16000) * 0.5
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wave = load_audio(path)
    assert wave.shape == (8000,)
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-7)


def test_segment_cut_equals_slicing(tmp_path):
    path = tmp_path / "a.wav"
    write_tone(path, 2.0)
    full = load_audio(path)
    np.testing.assert_array_equal(load_audio(path, 0.25, 0.75), full[4000:12000])
    np.testing.assert_array_equal(load_audio(path, 1.5, None), full[24000:])
    np.testing.assert_array_equal(load_audio(path, 1.5, -1), full[24000:])
    np.testing.assert_array_equal(load_audio(path, None, 0.5), full[:8000])


def test_segment_end_within_10ms_of_the_end_is_clipped(tmp_path):
    path = tmp_path / "a.wav"
    write_tone(path, 1.0)
    np.testing.assert_array_equal(load_audio(path, 0.5, 1.005), load_audio(path)[8000:])


@pytest.mark.parametrize("start,end,message", [
    (1.2, 1.5, "segment 1.2-1.5 s is outside the audio (1.000 s)"),
    (0.5, 1.1, "segment end 1.1 s is past the end of the audio (1.000 s)"),
    (0.6, 0.4, "segment 0.6-0.4 s is outside the audio (1.000 s)"),
])
def test_segment_outside_the_audio(tmp_path, start, end, message):
    path = tmp_path / "a.wav"
    write_tone(path, 1.0)
    with pytest.raises(AudioError) as err:
        load_audio(path, start, end)
    assert str(err.value) == f"{path}: {message}"


@pytest.mark.parametrize("content", [b"not audio at all" * 100, b"RIFF\x24\x00\x00\x00WAVEfmt ", b""])
def test_corrupt_file_is_a_one_line_audio_error(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    for call in (audio_info, load_audio):
        with pytest.raises(AudioError) as err:
            call(path)
        text = str(err.value)
        assert "\n" not in text
        assert text.startswith(f"{path}: unreadable audio: ")
        assert isinstance(err.value, DataError) and err.value.line is None


def test_missing_file(tmp_path):
    with pytest.raises(AudioError) as err:
        load_audio(tmp_path / "nope.wav")
    assert str(err.value) == f"{tmp_path / 'nope.wav'}: audio file not found"


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError) as err:
        audio_info(Path(tmp_path))
    assert str(err.value) == f"{tmp_path}: audio file not found"


# ------------------------------------------------------------ content checks
def test_nan_inf_and_empty_audio_are_one_line_errors_naming_the_file(tmp_path):
    wave = sine(440.0, 1.0, 16000)
    wave[8000:8004] = np.nan
    wave[12000] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(str(path), wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(err.value) == f"{path}: audio has 5 NaN/Inf samples (first at 0.500 s)"
    # a segment after the bad samples reads fine; one over them names the time in the file
    assert load_audio(path, 0.8, 0.9).shape == (1600,)
    with pytest.raises(AudioError, match=r"1 Inf samples \(first at 0\.750 s\)"):
        load_audio(path, 0.6, 0.9)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError) as err:
        load_audio(empty)
    assert str(err.value) == f"{empty}: audio file is empty (0 samples)"
    assert "None" not in str(err.value)


def test_bad_content_in_a_data_dir_names_the_wav_scp_line(data_dir_factory):
    from datadir_factory import wav_path

    from ent.data.datadir import DataDir

    data = data_dir_factory(3)
    path = wav_path(data, "utt002")
    wave = sf.read(str(path), dtype="float32")[0]
    wave[100] = np.nan
    sf.write(str(path), wave, 16000, subtype="FLOAT")
    d = DataDir.load(data)
    d.load_audio("utt001")
    with pytest.raises(DataError) as err:
        d.load_audio("utt002")
    assert str(err.value) == f"{data}/wav.scp:2: audio has 1 NaN samples (first at 0.006 s) ({path})"


def test_upsampling_warns_naming_the_file(tmp_path, caplog, monkeypatch):
    import ent.data.audio as audio

    monkeypatch.setattr(audio, "_upsampled_files", [])
    monkeypatch.setattr(audio, "MAX_UPSAMPLE_WARNINGS", 2)
    paths = []
    for k in range(4):
        paths.append(tmp_path / f"tel{k}.wav")
        sf.write(str(paths[-1]), sine(300.0, 0.2, 8000), 8000)
    sf.write(str(tmp_path / "hi.wav"), sine(300.0, 0.2, 48000), 48000)
    with caplog.at_level("WARNING", logger="ent.data.audio"):
        for path in paths + [paths[0], tmp_path / "hi.wav"]:
            load_audio(path)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"{paths[0]}: 8000 Hz audio upsampled to 16000 Hz: it has nothing above 4000 Hz, which the model was "
        "trained on (expect more errors)",
        f"{paths[1]}: 8000 Hz audio upsampled to 16000 Hz: it has nothing above 4000 Hz, which the model was "
        "trained on (expect more errors)",
        "more audio below 16000 Hz is upsampled (no further warnings)",
    ]  # 48 kHz is downsampled without a warning


def test_digital_silence_is_loaded_and_recognised(tmp_path):
    from ent.data.audio import is_digital_silence

    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros(8000, np.int16), 16000, subtype="PCM_16")
    wave = load_audio(path)
    assert wave.shape == (8000,) and is_digital_silence(wave)
    assert not is_digital_silence(np.array([0.0, 1e-6], np.float32))
    assert not is_digital_silence(np.zeros(0, np.float32))
