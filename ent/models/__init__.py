"""Complete models: the Emotion Neural Transducer and its factorized variant."""
