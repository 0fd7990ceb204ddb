"""A job's identity: same job, same key; any change the service would see, a new key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from vaceflow.identity import canonical_job, job_identity
from vaceflow.jobs import parse_job
from vaceflow.limits import Role

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


def repainting(**parameters: Any) -> Any:
    return parse_job(
        {
            "input": {
                "function": "video_repainting",
                "prompt": "a fox in the snow",
                "video_url": "https://bucket.example/in.mp4?X-Amz-Signature=abc",
            },
            "parameters": {"control_condition": "depth", **parameters},
        }
    )


def reference(urls: list[str], obj_or_bg: list[str] | None = None, **extra: Any) -> Any:
    parameters: dict[str, Any] = dict(extra)
    if obj_or_bg is not None:
        parameters["obj_or_bg"] = obj_or_bg
    return parse_job(
        {
            "input": {"function": "image_reference", "prompt": "a cat", "ref_images_url": urls},
            "parameters": parameters,
        }
    )


def test_defaults_filled_in_make_one_job() -> None:
    assert job_identity(repainting(strength=1.0), {Role.VIDEO: [H1]}) == job_identity(
        repainting(), {Role.VIDEO: [H1]}
    )


def test_a_changed_parameter_is_another_job() -> None:
    assert job_identity(repainting(strength=0.5), {Role.VIDEO: [H1]}) != job_identity(
        repainting(), {Role.VIDEO: [H1]}
    )
    assert job_identity(repainting(seed=1), {Role.VIDEO: [H1]}) != job_identity(
        repainting(seed=2), {Role.VIDEO: [H1]}
    )


def test_urls_do_not_count_but_content_does() -> None:
    one = reference(["https://a.example/x.png?sig=1"])
    other = reference(["https://elsewhere.example/y.png?sig=2"])
    assert job_identity(one, {Role.REF_IMAGE: [H1]}) == job_identity(other, {Role.REF_IMAGE: [H1]})
    assert job_identity(one, {Role.REF_IMAGE: [H1]}) != job_identity(one, {Role.REF_IMAGE: [H2]})


def test_reference_order_counts() -> None:
    job = reference(["https://a/1.png", "https://a/2.png"], ["obj", "bg"])
    assert job_identity(job, {Role.REF_IMAGE: [H1, H2]}) != job_identity(
        job, {Role.REF_IMAGE: [H2, H1]}
    )


def test_lone_reference_image_defaults_to_obj_and_duration_to_five() -> None:
    assert job_identity(reference(["https://a/1.png"]), {Role.REF_IMAGE: [H1]}) == job_identity(
        reference(["https://a/1.png"], ["obj"], duration=5), {Role.REF_IMAGE: [H1]}
    )


def test_prompt_and_model_count() -> None:
    job = repainting()
    renamed = job.model_copy(
        update={"input": job.input.model_copy(update={"prompt": "a fox in the rain"})}
    )
    assert job_identity(job, {Role.VIDEO: [H1]}) != job_identity(renamed, {Role.VIDEO: [H1]})
    beijing = job.with_model("wanx2.1-vace-plus")
    assert job_identity(job, {Role.VIDEO: [H1]}) != job_identity(beijing, {Role.VIDEO: [H1]})


def test_non_url_input_options_count_with_their_defaults() -> None:
    def edit(**extra: Any) -> Any:
        return parse_job(
            {
                "input": {
                    "function": "video_edit",
                    "prompt": "swap the hat",
                    "video_url": "https://a/v.mp4",
                    "mask_image_url": "https://a/m.png",
                    **extra,
                }
            }
        )

    hashes = {Role.VIDEO: [H1], Role.MASK_IMAGE: [H2]}
    assert job_identity(edit(), hashes) == job_identity(edit(mask_frame_id=1), hashes)
    assert job_identity(edit(), hashes) != job_identity(edit(mask_frame_id=5), hashes)


def test_hashes_must_match_the_inputs() -> None:
    with pytest.raises(ValueError, match="do not match"):
        job_identity(repainting(), {Role.VIDEO: [H1], Role.REF_IMAGE: [H2]})
    with pytest.raises(ValueError, match="do not match"):
        job_identity(reference(["https://a/1.png"]), {Role.REF_IMAGE: [H1, H3]})
    with pytest.raises(ValueError, match="sha256"):
        job_identity(repainting(), {Role.VIDEO: ["not-a-hash"]})


def test_the_recipe_is_pinned() -> None:
    """Existing catalogs key on this value: changing the recipe must be deliberate."""
    job = repainting()
    doc = canonical_job(job, {Role.VIDEO: [H1.upper()]})
    assert "https" not in str(doc)
    assert doc["media"] == {"video": [H1]}
    assert doc["parameters"] == {"control_condition": "depth", "strength": 1.0}
    written_out = {
        "scheme": 1,
        "model": "wan2.1-vace-plus",
        "function": "video_repainting",
        "prompt": "a fox in the snow",
        "input": {},
        "parameters": {"control_condition": "depth", "strength": 1.0},
        "media": {"video": [H1]},
    }
    text = json.dumps(written_out, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert job_identity(job, {Role.VIDEO: [H1]}) == expected
    assert expected == "f82f11cc027aa255e48505ca81dd9b994717d27c975086e916580de94b90ed9e"
