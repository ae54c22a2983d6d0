"""ENT: joint speech recognition and speech emotion recognition with the
Emotion Neural Transducer (Shen et al., ICASSP 2024)."""

__version__ = "0.1.0"
