"""Label sets used in the literature, with short definitions for LLM prompts."""

from __future__ import annotations

from lantern.data.dialogues import LabelSet

_DEFS = {
    "hap": "happy: pleased, content, amused", "sad": "sad: unhappy, hurt, down",
    "neu": "neutral: no clear emotion", "ang": "angry: annoyed, hostile, furious",
    "exc": "excited: enthusiastic, thrilled, elated", "fru": "frustrated: exasperated, stuck, fed up",
    "neutral": "neutral: no clear emotion", "surprise": "surprise: astonished, caught off guard",
    "fear": "fear: scared, anxious", "sadness": "sadness: unhappy, hurt, down",
    "joy": "joy: happy, pleased, amused", "disgust": "disgust: repulsed, contemptuous",
    "anger": "anger: annoyed, hostile, furious",
    "Joyful": "joyful: happy, cheerful", "Mad": "mad: angry, annoyed",
    "Peaceful": "peaceful: calm, relaxed, content", "Neutral": "neutral: no clear emotion",
    "Sad": "sad: unhappy, hurt", "Powerful": "powerful: confident, proud",
    "Scared": "scared: afraid, anxious",
    "happiness": "happiness: happy, pleased",
    "calm": "calm: relaxed, at ease", "happy": "happy: pleased, joyful",
    "angry": "angry: annoyed, hostile, furious", "fearful": "fearful: scared, anxious",
    "surprised": "surprised: astonished, caught off guard",
    "Anger": "anger: annoyed, hostile, furious", "Disgust": "disgust: repulsed, contemptuous",
    "Fear": "fear: scared, anxious", "Happy": "happy: pleased, joyful",
    "Surprise": "surprise: astonished, caught off guard",
}


def label_set(name: str, classes: tuple[str, ...], multi_label: bool = False) -> LabelSet:
    """A label set whose classes carry the short definitions LLM prompts show."""
    return LabelSet(name, classes, tuple(_DEFS.get(c, c) for c in classes), multi_label)


IEMOCAP_6WAY = label_set("6way", ("hap", "sad", "neu", "ang", "exc", "fru"))
# Two 4-way conventions: excited merged into happy, or excited and frustrated dropped.
IEMOCAP_4WAY_MERGE = label_set("4way-merge", ("hap", "sad", "neu", "ang"))
IEMOCAP_4WAY_DROP = label_set("4way-drop", ("hap", "sad", "neu", "ang"))
MELD_7 = label_set("meld7", ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"))
EMORYNLP_7 = label_set("emorynlp7", ("Joyful", "Mad", "Peaceful", "Neutral", "Sad", "Powerful", "Scared"))
DAILYDIALOG_7 = label_set("dailydialog7", ("neutral", "happiness", "surprise", "anger", "sadness", "disgust", "fear"))
# The space every corpus maps into (lantern.data.label_mapping): Ekman's six plus neutral.
SHARED_7 = label_set("shared7", ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"))
# RAVDESS emotion codes 01-08, in code order.
# FER2013 expressions, in the classic integer order.
FER2013_7 = label_set("fer7", ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
# EMOTIC's 26 categories (multi-label), in the official order.
EMOTIC_26 = label_set("emotic26", (
    "Affection", "Anger", "Annoyance", "Anticipation", "Aversion", "Confidence", "Disapproval",
    "Disconnection", "Disquietment", "Doubt/Confusion", "Embarrassment", "Engagement", "Esteem",
    "Excitement", "Fatigue", "Fear", "Happiness", "Pain", "Peace", "Pleasure", "Sadness",
    "Sensitivity", "Suffering", "Surprise", "Sympathy", "Yearning"), multi_label=True)
# CAER-S (its folder names).
CAER_7 = label_set("caer7", ("Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"))
RAVDESS_8 = label_set("ravdess8", ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"))

LABEL_SETS = {ls.name: ls for ls in (IEMOCAP_6WAY, IEMOCAP_4WAY_MERGE, IEMOCAP_4WAY_DROP,
                                      MELD_7, EMORYNLP_7, DAILYDIALOG_7, SHARED_7, RAVDESS_8, FER2013_7, CAER_7, EMOTIC_26)}
