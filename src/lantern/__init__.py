"""lantern: multimodal emotion recognition with vanilla models refined by LLMs.

Data flow: data -> features -> vanilla model -> receptive fields -> prompts -> LLM
-> fusion -> evaluation -> BENCHMARKS.md. Heavy dependencies (torch, sentence-transformers,
openSMILE, MediaPipe, llama.cpp) are imported lazily by the modules that need them.
"""

__version__ = "0.1.0"
