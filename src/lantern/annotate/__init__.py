"""MERR-lite annotation for Emotion-LLaMA: action units, peak frame, tone of voice, captions
and LLM-written reasons (``lantern annotate``; :func:`lantern.annotate.merr.annotate`)."""
