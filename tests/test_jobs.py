"""The job models: the reference bodies round-trip, and every limit holds on both sides."""
# ruff: noqa: E501  (the reference bodies are copied verbatim, long prompts and all)

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from vaceflow.errors import describe_validation_error
from vaceflow.jobs import (
    Function,
    ImageReferenceJob,
    VideoEditJob,
    VideoExtensionJob,
    VideoOutpaintingJob,
    VideoRepaintingJob,
    parse_job,
)
from vaceflow.limits import PROMPT_MAX_CHARS, SEED_MAX, Role

# The five request bodies of the provider reference (wan2.1-vace-plus-api.txt), verbatim.
REFERENCE_BODIES = {
    "image_reference": """{
"model": "wan2.1-vace-plus",
"input": {
"function": "image_reference",
"prompt": "In the video, a girl gracefully emerges from a misty, ancient forest. Her steps are light, and the camera captures her every nimble moment. When she stops to look at the lush woods around her, a smile of surprise and joy blossoms on her face. This scene, frozen in an interplay of light and shadow, records her wonderful encounter with nature.",
"ref_images_url": [
"http://wanx.alicdn.com/material/20250318/image_reference_2_5_16.png",
"http://wanx.alicdn.com/material/20250318/image_reference_1_5_16.png"
]
},
"parameters": {
"prompt_extend": true,
"obj_or_bg": ["obj","bg"],
"size": "1280*720"
}
}""",
    "video_repainting": """{
"model": "wan2.1-vace-plus",
"input": {
"function": "video_repainting",
"prompt": "The video shows a black steampunk-style car driven by a gentleman, adorned with gears and copper pipes. The background is a steam-powered candy factory with retro elements, creating a vintage and fun scene.",
"video_url": "http://wanx.alicdn.com/material/20250318/video_repainting_1.mp4"
},
"parameters": {
"prompt_extend": false,
"control_condition": "depth"
}
}""",
    "video_edit": """{
"model": "wan2.1-vace-plus",
"input": {
"function": "video_edit",
"prompt": "The video shows a Parisian-style French cafe where a lion in a suit elegantly sips coffee. It holds a coffee cup in one hand, taking a gentle sip with a relaxed expression. The cafe is tastefully decorated, with soft hues and warm lighting illuminating the lion's area.",
"mask_image_url": "http://wanx.alicdn.com/material/20250318/video_edit_1_mask.png",
"video_url": "http://wanx.alicdn.com/material/20250318/video_edit_2.mp4",
"mask_frame_id": 1
},
"parameters": {
"prompt_extend": false,
"mask_type": "tracking",
"expand_ratio": 0.05
}
}""",
    "video_extension": """{
"model": "wan2.1-vace-plus",
"input": {
"function": "video_extension",
"prompt": "A dog wearing sunglasses skateboarding on the street, 3D cartoon.",
"first_clip_url": "http://wanx.alicdn.com/material/20250318/video_extension_1.mp4"
},
"parameters": {
"prompt_extend": false
}
}""",
    "video_outpainting": """{
"model": "wan2.1-vace-plus",
"input": {
"function": "video_outpainting",
"prompt": "An elegant woman passionately plays the violin, with a full symphony orchestra behind her.",
"video_url": "http://wanx.alicdn.com/material/20250318/video_outpainting_1.mp4"
},
"parameters": {
"prompt_extend": false,
"top_scale": 1.5,
"bottom_scale": 1.5,
"left_scale": 1.5,
"right_scale": 1.5
}
}""",
}

JOB_CLASS = {
    "image_reference": ImageReferenceJob,
    "video_repainting": VideoRepaintingJob,
    "video_edit": VideoEditJob,
    "video_extension": VideoExtensionJob,
    "video_outpainting": VideoOutpaintingJob,
}


def body(function: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads(REFERENCE_BODIES[function]))


def refused(value: dict[str, Any]) -> str:
    """The one-line message a user sees for a refused body."""
    with pytest.raises(ValidationError) as caught:
        parse_job(value)
    return describe_validation_error(caught.value)


# --- the reference bodies ----------------------------------------------------------------


@pytest.mark.parametrize("function", list(REFERENCE_BODIES))
def test_reference_body_round_trips(function: str) -> None:
    job = parse_job(REFERENCE_BODIES[function])
    assert isinstance(job, JOB_CLASS[function])
    assert job.function is Function(function)
    assert job.to_body() == json.loads(REFERENCE_BODIES[function])
    assert parse_job(json.dumps(job.to_body())).to_body() == job.to_body()


def test_media_lists_urls_by_role_in_request_order() -> None:
    assert parse_job(body("image_reference")).input.media() == {
        Role.REF_IMAGE: [
            "http://wanx.alicdn.com/material/20250318/image_reference_2_5_16.png",
            "http://wanx.alicdn.com/material/20250318/image_reference_1_5_16.png",
        ]
    }
    edit = parse_job(body("video_edit")).input.media()
    assert set(edit) == {Role.VIDEO, Role.MASK_IMAGE}


def test_defaults_are_left_to_the_service() -> None:
    """A minimal body stays minimal: the defaults the model knows are not sent."""
    minimal = {"input": {"function": "video_outpainting", "prompt": "p", "video_url": "http://v"}}
    job = parse_job(minimal)
    assert job.parameters.top_scale == 1.0
    assert job.to_body() == {"model": "wan2.1-vace-plus", **minimal}


# --- image_reference ---------------------------------------------------------------------


def _refs(n: int, roles: list[str] | None) -> dict[str, Any]:
    b = body("image_reference")
    b["input"]["ref_images_url"] = [f"http://h/{i}.png" for i in range(n)]
    if roles is None:
        del b["parameters"]["obj_or_bg"]
    else:
        b["parameters"]["obj_or_bg"] = roles
    return b


@pytest.mark.parametrize(
    ("n", "roles"),
    [(1, None), (1, ["obj"]), (1, ["bg"]), (3, ["obj", "obj", "bg"]), (3, ["obj", "obj", "obj"])],
)
def test_one_to_three_reference_images(n: int, roles: list[str] | None) -> None:
    assert len(parse_job(_refs(n, roles)).input.ref_images_url) == n


def test_zero_or_four_reference_images_are_refused() -> None:
    assert "input.ref_images_url" in refused(_refs(0, []))
    message = refused(_refs(4, ["obj"] * 4))
    assert "input.ref_images_url" in message
    assert "at most 3" in message


@pytest.mark.parametrize(
    ("n", "roles", "expected"),
    [
        (2, None, "parameters.obj_or_bg is required with 2 reference images"),
        (2, ["obj"], "parameters.obj_or_bg has 1 entries but input.ref_images_url has 2"),
        (2, ["obj", "obj", "obj"], "parameters.obj_or_bg has 3 entries"),
        (3, ["bg", "obj", "bg"], "at most one background"),
        (1, ["background"], "parameters.obj_or_bg.0"),
    ],
)
def test_obj_or_bg_must_match_the_images(n: int, roles: list[str] | None, expected: str) -> None:
    assert expected in refused(_refs(n, roles))


@pytest.mark.parametrize("size", ["1280*720", "720*1280", "960*960", "832*1088", "1088*832"])
def test_each_size_of_the_reference_is_accepted(size: str) -> None:
    for function in ("image_reference", "video_edit"):
        b = body(function)
        b["parameters"]["size"] = size
        assert parse_job(b).to_body()["parameters"]["size"] == size


@pytest.mark.parametrize("function", ["image_reference", "video_edit"])
def test_a_sixth_size_is_refused(function: str) -> None:
    b = body(function)
    b["parameters"]["size"] = "1920*1080"
    message = refused(b)
    assert message.startswith("parameters.size:")
    assert "1280*720" in message


def test_size_is_refused_where_the_function_has_none() -> None:
    b = body("video_outpainting")
    b["parameters"]["size"] = "1280*720"
    assert "parameters.size" in refused(b)


# --- video_repainting ----------------------------------------------------------------------


def test_repainting_needs_a_control_condition() -> None:
    b = body("video_repainting")
    del b["parameters"]["control_condition"]
    assert "parameters.control_condition" in refused(b)
    b = body("video_repainting")
    del b["parameters"]
    assert "parameters" in refused(b)


def test_repainting_takes_one_reference_image_at_most() -> None:
    b = body("video_repainting")
    b["input"]["ref_images_url"] = ["http://h/a.png"]
    assert parse_job(b).input.media()[Role.REF_IMAGE] == ["http://h/a.png"]
    b["input"]["ref_images_url"] = ["http://h/a.png", "http://h/b.png"]
    assert "input.ref_images_url" in refused(b)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_strength_inside_its_range(value: float) -> None:
    b = body("video_repainting")
    b["parameters"]["strength"] = value
    assert parse_job(b).parameters.strength == value


@pytest.mark.parametrize("value", [-0.01, 1.01])
def test_strength_outside_its_range(value: float) -> None:
    b = body("video_repainting")
    b["parameters"]["strength"] = value
    assert refused(b).startswith("parameters.strength:")


# --- video_edit ------------------------------------------------------------------------------


def test_edit_takes_a_mask_video_instead_of_an_image() -> None:
    b = body("video_edit")
    b["input"]["mask_video_url"] = b["input"].pop("mask_image_url")
    del b["input"]["mask_frame_id"]
    assert Role.MASK_VIDEO in parse_job(b).input.media()


def test_edit_refuses_both_masks_and_neither() -> None:
    both = body("video_edit")
    both["input"]["mask_video_url"] = "http://h/m.mp4"
    assert "not both" in refused(both)
    neither = body("video_edit")
    del neither["input"]["mask_image_url"]
    assert "needs mask_image_url or mask_video_url" in refused(neither)


def test_mask_frame_id_starts_at_one() -> None:
    b = body("video_edit")
    b["input"]["mask_frame_id"] = 1
    assert parse_job(b).input.mask_frame_id == 1
    b["input"]["mask_frame_id"] = 0
    assert refused(b).startswith("input.mask_frame_id:")


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_expand_ratio_inside_its_range(value: float) -> None:
    b = body("video_edit")
    b["parameters"]["expand_ratio"] = value
    assert parse_job(b).parameters.expand_ratio == value


@pytest.mark.parametrize("value", [-0.01, 1.01])
def test_expand_ratio_outside_its_range(value: float) -> None:
    b = body("video_edit")
    b["parameters"]["expand_ratio"] = value
    assert refused(b).startswith("parameters.expand_ratio:")


def test_edit_control_condition_is_limited_to_its_own_set() -> None:
    b = body("video_edit")
    b["parameters"]["control_condition"] = "posebodyface"
    assert parse_job(b).to_body()["parameters"]["control_condition"] == "posebodyface"
    b["parameters"]["control_condition"] = "scribble"
    assert "parameters.control_condition" in refused(b)


# --- video_extension ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["first_frame_url", "last_frame_url", "first_clip_url", "last_clip_url"]
)
def test_extension_from_any_one_input(field: str) -> None:
    b = body("video_extension")
    del b["input"]["first_clip_url"]
    b["input"][field] = "http://h/x"
    assert parse_job(b).to_body()["input"][field] == "http://h/x"


def test_extension_with_nothing_to_extend_is_refused() -> None:
    b = body("video_extension")
    del b["input"]["first_clip_url"]
    assert "needs at least one of first_frame_url" in refused(b)
    b["input"]["video_url"] = "http://h/guide.mp4"
    b["parameters"]["control_condition"] = "depth"
    assert "needs at least one of" in refused(b)


def test_extension_guide_video_needs_a_control_condition() -> None:
    b = body("video_extension")
    b["input"]["video_url"] = "http://h/guide.mp4"
    message = refused(b)
    assert "parameters.control_condition is required" in message
    assert "posebodyface" in message
    b["parameters"]["control_condition"] = "posebody"
    assert parse_job(b).to_body()["parameters"]["control_condition"] == "posebody"


# --- video_outpainting ---------------------------------------------------------------------------

SCALES = ["top_scale", "bottom_scale", "left_scale", "right_scale"]


@pytest.mark.parametrize("name", SCALES)
@pytest.mark.parametrize("value", [1.0, 2.0])
def test_scales_inside_their_range(name: str, value: float) -> None:
    b = body("video_outpainting")
    b["parameters"][name] = value
    assert getattr(parse_job(b).parameters, name) == value


@pytest.mark.parametrize("name", SCALES)
@pytest.mark.parametrize(
    ("value", "bound"), [(0.99, "greater than or equal to 1"), (2.01, "less than or equal to 2")]
)
def test_scales_outside_their_range(name: str, value: float, bound: str) -> None:
    b = body("video_outpainting")
    b["parameters"][name] = value
    assert refused(b) == f"parameters.{name}: should be {bound}"


# --- shared fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, SEED_MAX])
def test_seed_inside_its_range(seed: int) -> None:
    for function in REFERENCE_BODIES:
        b = body(function)
        b["parameters"]["seed"] = seed
        assert parse_job(b).to_body()["parameters"]["seed"] == seed


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1])
def test_seed_outside_its_range(seed: int) -> None:
    for function in REFERENCE_BODIES:
        b = body(function)
        b["parameters"]["seed"] = seed
        assert refused(b).startswith("parameters.seed:")


@pytest.mark.parametrize(
    "function", ["image_reference", "video_edit", "video_extension", "video_outpainting"]
)
def test_duration_is_five_or_nothing(function: str) -> None:
    b = body(function)
    b["parameters"]["duration"] = 5
    assert parse_job(b).to_body()["parameters"]["duration"] == 5
    b["parameters"]["duration"] = 4
    assert refused(b).startswith("parameters.duration:")


def test_prompt_of_800_characters_is_kept_and_801_refused_clearly() -> None:
    b = body("video_outpainting")
    b["input"]["prompt"] = "x" * PROMPT_MAX_CHARS
    assert len(parse_job(b).input.prompt) == PROMPT_MAX_CHARS
    b["input"]["prompt"] = "x" * (PROMPT_MAX_CHARS + 1)
    message = refused(b)
    assert message.startswith("input.prompt:")
    assert "801 characters" in message
    assert "800" in message
    assert "shorten" in message


def test_chinese_characters_count_one_each() -> None:
    b = body("video_outpainting")
    b["input"]["prompt"] = "视" * PROMPT_MAX_CHARS
    assert parse_job(b).input.prompt == "视" * PROMPT_MAX_CHARS


@pytest.mark.parametrize("prompt", ["", "   "])
def test_an_empty_prompt_is_refused(prompt: str) -> None:
    b = body("video_outpainting")
    b["input"]["prompt"] = prompt
    assert refused(b).startswith("input.prompt:")


@pytest.mark.parametrize(
    ("where", "name"),
    [("input", "video_urll"), ("parameters", "top_scal"), (None, "extra")],
)
def test_unknown_fields_are_refused(where: str | None, name: str) -> None:
    b = body("video_outpainting")
    (b[where] if where else b)[name] = 1
    message = refused(b)
    assert f"{where + '.' if where else ''}{name}: Extra inputs are not permitted" in message


def test_a_field_of_another_function_is_refused() -> None:
    b = body("video_outpainting")
    b["parameters"]["obj_or_bg"] = ["obj"]
    assert "parameters.obj_or_bg" in refused(b)


@pytest.mark.parametrize("function", ["image_generation", "", None])
def test_unknown_or_missing_function(function: str | None) -> None:
    b = body("video_outpainting")
    if function is None:
        del b["input"]["function"]
    else:
        b["input"]["function"] = function
    message = refused(b)
    assert "input.function must be one of" in message
    assert "video_outpainting" in message


@pytest.mark.parametrize("model", ["wan2.1-vace-plus", "wanx2.1-vace-plus"])
def test_both_regions_models(model: str) -> None:
    b = body("video_outpainting")
    b["model"] = model
    assert parse_job(b).to_body()["model"] == model


def test_unknown_model_is_refused() -> None:
    b = body("video_outpainting")
    b["model"] = "wan2.2-vace-plus"
    message = refused(b)
    assert message.startswith("model:")
    assert "wan2.2-vace-plus" in message
    assert "wanx2.1-vace-plus" in message


def test_with_model_swaps_the_region_name_only() -> None:
    job = parse_job(body("video_outpainting"))
    moved = job.with_model("wanx2.1-vace-plus")
    assert moved.to_body() == {**job.to_body(), "model": "wanx2.1-vace-plus"}
    with pytest.raises(ValueError, match="unknown model"):
        job.with_model("other")
