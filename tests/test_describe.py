"""Describers (issue #13): the vlm describer against a local server speaking the OpenAI vision
message format, the offline observations describer, caching, and bad images."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import completion, http_server, require_data
from lantern.describe.describers import (NOT_SEEN, ObservationsDescriber, VLMDescriber,
                                         describe_images)
from lantern.features.images import MAX_PIXELS, load_image
from lantern.errors import DataError
from lantern.llm.base import ChatResponse, LLM

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _vision_server():
    """Answers chat completions; checks each request carries a JPEG data URL."""
    def handle(h):
        if h.path.endswith("/models"):
            return 200, {"Content-Type": "application/json"}, json.dumps({"data": [{"id": "llava"}]}).encode()
        body = json.loads(h.server_seen[-1]["body"])
        parts = body["messages"][0]["content"]
        text = next(p["text"] for p in parts if p["type"] == "text")
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        assert url.startswith("data:image/jpeg;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        red = int(((np.asarray(img)[:, :, 0] > 200) & (np.asarray(img)[:, :, 1] < 60)).sum())
        return 200, {"Content-Type": "application/json"}, json.dumps(
            completion(f"red pixels {red}; asked: {text}", 900, 40)).encode()
    server, seen = http_server(handle)
    server.RequestHandlerClass.server_seen = seen   # the handler reads the body the server logged
    return server, seen


def _red(text: str) -> int:
    return int(text.split("red pixels ")[1].split(";")[0])


def test_vlm_describer_sends_the_image_inline_with_the_red_box(tmp_path):
    from lantern.llm.cache import LLMCache

    server, seen = _vision_server()
    try:
        path = tmp_path / "scene.jpg"
        Image.new("RGB", (120, 90), (40, 90, 160)).save(path)
        d = VLMDescriber(f"http://127.0.0.1:{server.server_port}/v1", model="llava")
        cache = LLMCache(tmp_path / "c.sqlite")
        out = describe_images([path], d, CLASSES, cache=cache, boxes=[(10, 10, 60, 70)])[0]
        assert out.status == "ok" and out.prompt_tokens == 900 and out.describer == "vlm"
        assert _red(out.text) > 100                                 # the box was drawn in red
        assert "how the person in the red box feels" in out.text
        again = describe_images([path], d, CLASSES, cache=cache, boxes=[(10, 10, 60, 70)])[0]
        posts = [s for s in seen if s["method"] == "POST"]
        assert again.cached and again.text == out.text and len(posts) == 1   # no second call
        whole = describe_images([path], d, CLASSES, cache=cache)[0]
        assert _red(whole.text) == 0 and "person in the image" in whole.text
    finally:
        server.shutdown()


class Writer(LLM):
    backend, model_id = "scripted", "writer"

    def __init__(self):
        self.prompts = []

    def chat(self, request):
        self.prompts.append(request.messages[-1]["content"])
        return ChatResponse(json.dumps({"description": "The person seems mostly happy."}), 120, 12,
                            0.01, "stop", "writer")


@pytest.mark.data
def test_observations_describer_says_no_model_looked_at_the_scene(tmp_path):
    pytest.importorskip("mediapipe")
    face = sorted(require_data("FER2013_test_images/test/happy").glob("*.jpg"))[0]
    writer = Writer()
    d = ObservationsDescriber(llm=writer)
    out = describe_images([face], d, CLASSES)[0]
    assert out.status == "ok" and NOT_SEEN in out.text and NOT_SEEN in out.notes
    assert set(out.observations) >= {"subject", "lighting", "face"}
    assert "no model looked at the scene" in writer.prompts[0]
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    small = describe_images([tiny], d, CLASSES)[0]
    assert small.observations["face"] == "no face found"
    assert any("tiny image" in n for n in small.notes)
    d.close()


def test_bad_images_get_a_clear_error_or_a_stated_fallback(tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match="cannot read the image") as err:
        load_image(corrupt)
    assert "corrupt.jpg" in str(err.value)
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)       # 400 MP, a few kB on disk
    with pytest.raises(DataError, match="at most 40 MP"):
        load_image(huge)
    assert 20000 * 20000 > MAX_PIXELS
    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (32, 32), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    img, notes = load_image(gif)
    assert img.mode == "RGB" and any("first frame" in n for n in notes)
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32)).save(cmyk)
    assert load_image(cmyk)[1] == ["converted from CMYK to RGB"]
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "missing.png")
