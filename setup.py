"""Installation script for ENT, the Emotion Neural Transducer toolkit."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent

# Versions measured to work together on CPU and on the GPU machine (see README).
install_requires = [
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "espnet==202511",
    "sentencepiece==0.2.0",
    "transformers==5.24.0",  # pretrained wav2vec 2.0 / HuBERT / WavLM front ends (local weights only)
    "numpy",
    "numba",
    "jiwer",
    "soundfile",
    "espeakng-loader",
    "tqdm",
    "PyYAML",
    "matplotlib",
    "tensorboard",
    "protobuf",
    "opensmile",     # eGeMAPS functionals of the functional SER baseline (ships the openSMILE binary)
    "scikit-learn",  # its logistic regression
]

extras_require = {
    "dev": ["pytest", "pytest-timeout"],
}

setup(
    name="ent",
    version="0.1.0",
    description="ENT: joint speech recognition and speech emotion recognition "
    "with the Emotion Neural Transducer",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ent", "ent.*"]),
    package_data={"ent": ["csrc/*.cu", "csrc/*.cpp", "csrc/*.h", "csrc/README.md"]},
    install_requires=install_requires,
    extras_require=extras_require,
    entry_points={
        "console_scripts": [
            "ent-validate-data-dir=ent.bin.validate_data_dir:main",
            "ent-fix-data-dir=ent.bin.fix_data_dir:main",
            "ent-transcribe=ent.bin.transcribe:main",
        ]
    },
)
