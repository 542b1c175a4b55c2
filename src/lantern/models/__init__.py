"""Vanilla multi-task models registered by name."""

from lantern.registry import Registry

MODELS = Registry("model")
MODELS.register("context", "lantern.models.context_baseline:ContextBaseline")
MODELS.register("corect", "lantern.models.corect:CORECT")
MODELS.register("sdt", "lantern.models.sdt:SDT")
MODELS.register("linear", "lantern.models.utterance:LinearClassifier")
MODELS.register("mlp", "lantern.models.utterance:MLPClassifier")
MODELS.register("emotion-llama", "lantern.models.emotion_llama:EmotionLlama")
MODELS.register("context-qformer", "lantern.models.context_qformer:ContextQFormer")
MODELS.register("ensemble", "lantern.models.ensemble:Ensemble")
