"""Typed request bodies for the five VACE functions.

One model per function, each the exact wire body `{"model", "input", "parameters"}`,
under `Job`, a union discriminated on `input.function`. Every field, default and range
is the provider reference's; the cross-field rules are checked here so a refused body
never costs a submission. Unknown fields are refused (a typo is an error, not a no-op).

Serialise with `job.to_body()`: it keeps exactly the fields that were set, so a body
copied from the reference parses and serialises back to the same JSON.

A job's inputs are references until it is sent: a local path, an http(s) URL or an
s3:// URI as a user gives them, the conformed files' file:// URIs once prepared
(`vaceflow.media.prepare`), and the URLs the service fetches only in the request that
submits it (`vaceflow.pipeline.submit_job`); `with_media` is how each takes the last's place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)

from vaceflow.limits import (
    MAX_REF_IMAGES,
    MAX_REF_IMAGES_WITH_VIDEO,
    PROMPT_MAX_CHARS,
    SEED_MAX,
    Role,
)

__all__ = [
    "DEFAULT_MODEL",
    "JOB_ADAPTER",
    "JOB_TYPES",
    "MODELS",
    "ControlCondition",
    "EditControlCondition",
    "ExpandMode",
    "Function",
    "ImageReferenceInput",
    "ImageReferenceJob",
    "ImageReferenceParameters",
    "Job",
    "MaskType",
    "ObjOrBg",
    "Prompt",
    "Scale",
    "Seed",
    "Size",
    "UnitFloat",
    "VideoEditInput",
    "VideoEditJob",
    "VideoEditParameters",
    "VideoExtensionInput",
    "VideoExtensionJob",
    "VideoExtensionParameters",
    "VideoOutpaintingInput",
    "VideoOutpaintingJob",
    "VideoOutpaintingParameters",
    "VideoRepaintingInput",
    "VideoRepaintingJob",
    "VideoRepaintingParameters",
    "parse_job",
]

MODELS: tuple[str, ...] = ("wan2.1-vace-plus", "wanx2.1-vace-plus")
"""International (Singapore) and China (Beijing) names of the same model."""
DEFAULT_MODEL = MODELS[0]


class Function(StrEnum):
    IMAGE_REFERENCE = "image_reference"
    VIDEO_REPAINTING = "video_repainting"
    VIDEO_EDIT = "video_edit"
    VIDEO_EXTENSION = "video_extension"
    VIDEO_OUTPAINTING = "video_outpainting"


class Size(StrEnum):
    """Output width*height (image_reference, video_edit)."""

    LANDSCAPE_16_9 = "1280*720"
    PORTRAIT_9_16 = "720*1280"
    SQUARE = "960*960"
    PORTRAIT_3_4 = "832*1088"
    LANDSCAPE_4_3 = "1088*832"


class ObjOrBg(StrEnum):
    OBJ = "obj"
    BG = "bg"


class ControlCondition(StrEnum):
    POSEBODYFACE = "posebodyface"
    POSEBODY = "posebody"
    DEPTH = "depth"
    SCRIBBLE = "scribble"


class EditControlCondition(StrEnum):
    NONE = ""
    POSEBODYFACE = "posebodyface"
    DEPTH = "depth"


class MaskType(StrEnum):
    TRACKING = "tracking"
    FIXED = "fixed"


class ExpandMode(StrEnum):
    HULL = "hull"
    BBOX = "bbox"
    ORIGINAL = "original"


Prompt = Annotated[
    str,
    Field(
        min_length=1,
        description="What the video should show (at most 800 characters).",
        json_schema_extra={"maxLength": PROMPT_MAX_CHARS},
    ),
]
Url = Annotated[str, Field(min_length=1, description="A local path, http(s) URL or s3:// URI.")]
"""An input as a user gives it; the request sent carries a URL the service fetches."""
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
Scale = Annotated[float, Field(ge=1.0, le=2.0)]
UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, frozen=False)


class _Input(_Strict):
    one_of: ClassVar[tuple[str, ...]] = ()
    """Fields of which the function needs at least one (none of them required alone)."""

    prompt: Prompt

    @field_validator("prompt")
    @classmethod
    def _prompt_fits(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt is empty")
        if len(value) > PROMPT_MAX_CHARS:
            raise ValueError(
                f"prompt is {len(value)} characters; the service keeps only the first "
                f"{PROMPT_MAX_CHARS} and drops the rest silently: shorten it"
            )
        return value

    def media(self) -> dict[Role, list[str]]:
        """The input URLs by role, in request order."""
        found: dict[Role, list[str]] = {}
        for role in Role:
            value = getattr(self, role.api_field, None)
            if value:
                found[role] = list(value) if isinstance(value, list) else [value]
        return found


class _Common(_Strict):
    """The parameters every function takes."""

    prompt_extend: bool | None = Field(
        default=None, description="Let an LLM rewrite the prompt (slower; helps short prompts)."
    )
    seed: Seed | None = Field(default=None, description="Fix it to reproduce a result.")
    watermark: bool | None = Field(
        default=None, description='Add an "AI-generated" mark at the bottom right.'
    )


class _Parameters(_Common):
    duration: Literal[5] | None = Field(
        default=None, description="Fixed at 5 seconds by the service."
    )


class _Job(_Strict):
    model: str = Field(
        default=DEFAULT_MODEL, description="wan2.1-vace-plus (intl) or wanx2.1-vace-plus (cn)."
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; expected one of {', '.join(MODELS)}")
        return value

    @property
    def function(self) -> Function:
        return Function(self.input.function)  # type: ignore[attr-defined]

    def to_body(self) -> dict[str, Any]:
        """The JSON body to POST: the fields that were set, defaults left to the service."""
        body = self.model_dump(mode="json", exclude_unset=True)
        body["model"] = self.model
        body["input"] = {"function": self.function.value, **body["input"]}
        return body

    def with_model(self, model: str) -> Self:
        return self.model_copy(update={"model": self._known_model(model)})

    def with_media(self, refs: Mapping[Role, Sequence[str]]) -> Self:
        """This job with the inputs of each role in `refs` put in their place: the
        references a user gave become conformed files, then the URLs sent."""
        body = self.model_dump(mode="json", exclude_unset=True)
        for role, found in refs.items():
            body["input"][role.api_field] = list(found) if role is Role.REF_IMAGE else found[0]
        return self.model_validate(body)


# --- image_reference ---------------------------------------------------------------


class ImageReferenceInput(_Input):
    function: Literal[Function.IMAGE_REFERENCE] = Function.IMAGE_REFERENCE
    prompt: Prompt = Field(description="What the video should show.")
    ref_images_url: list[Url] = Field(
        min_length=1,
        max_length=MAX_REF_IMAGES,
        description="1-3 images: subjects on a plain background, or one background.",
    )


class ImageReferenceParameters(_Parameters):
    obj_or_bg: list[ObjOrBg] | None = Field(
        default=None,
        description='Per image, "obj" (subject) or "bg" (background); needed for 2-3 images.',
    )
    size: Size = Field(default=Size.LANDSCAPE_16_9, description="Output width*height.")


class ImageReferenceJob(_Job):
    """A video from 1-3 reference images (subjects and a background)."""

    input: ImageReferenceInput
    parameters: ImageReferenceParameters = Field(default_factory=ImageReferenceParameters)

    @model_validator(mode="after")
    def _roles_match_images(self) -> Self:
        images, roles = self.input.ref_images_url, self.parameters.obj_or_bg
        if roles is None:
            if len(images) > 1:
                raise ValueError(
                    f"parameters.obj_or_bg is required with {len(images)} reference images "
                    "(one 'obj' or 'bg' per image); it may be omitted only for one image"
                )
            return self
        if len(roles) != len(images):
            raise ValueError(
                f"parameters.obj_or_bg has {len(roles)} entries but input.ref_images_url has "
                f"{len(images)}: they must be the same length"
            )
        if roles.count(ObjOrBg.BG) > 1:
            raise ValueError("parameters.obj_or_bg: at most one background ('bg') image")
        return self


# --- video_repainting --------------------------------------------------------------


class VideoRepaintingInput(_Input):
    function: Literal[Function.VIDEO_REPAINTING] = Function.VIDEO_REPAINTING
    prompt: Prompt = Field(description="What the video should show.")
    video_url: Url = Field(description="The video whose motion to keep (cut to its first 5 s).")
    ref_images_url: list[Url] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REF_IMAGES_WITH_VIDEO,
        description="An optional subject to put in place of the video's.",
    )


class VideoRepaintingParameters(_Common):
    control_condition: ControlCondition = Field(
        description="What to keep from the input video: pose (+/- face), depth or line art."
    )
    strength: UnitFloat = Field(
        default=1.0, description="How closely the output follows the input's motion (0-1)."
    )


class VideoRepaintingJob(_Job):
    """Restyle a video, keeping its pose, depth or line art."""

    input: VideoRepaintingInput
    parameters: VideoRepaintingParameters


# --- video_edit --------------------------------------------------------------------


class VideoEditInput(_Input):
    function: Literal[Function.VIDEO_EDIT] = Function.VIDEO_EDIT
    prompt: Prompt = Field(description="What the masked area should show.")
    video_url: Url = Field(description="The video to edit (cut to its first 5 s).")
    ref_images_url: list[Url] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REF_IMAGES_WITH_VIDEO,
        description="An optional subject or background for the edited area.",
    )
    mask_image_url: Url | None = Field(
        default=None, description="White marks the area to edit, black what to keep."
    )
    mask_frame_id: int = Field(
        default=1, ge=1, description="The frame (1 = first) that the mask image marks."
    )
    mask_video_url: Url | None = Field(
        default=None, description="A mask per frame, same size, rate and length as the video."
    )

    one_of: ClassVar[tuple[str, ...]] = ("mask_image_url", "mask_video_url")

    @model_validator(mode="after")
    def _one_mask(self) -> Self:
        if self.mask_image_url and self.mask_video_url:
            raise ValueError("give mask_image_url or mask_video_url, not both")
        if not self.mask_image_url and not self.mask_video_url:
            raise ValueError("video_edit needs mask_image_url or mask_video_url")
        return self


class VideoEditParameters(_Parameters):
    control_condition: EditControlCondition = Field(
        default=EditControlCondition.NONE,
        description="What to keep from the video outside the mask: none (default), the "
        "pose with the face, or depth.",
    )
    mask_type: MaskType = Field(
        default=MaskType.TRACKING,
        description="tracking: the area follows the object; fixed: it stays put.",
    )
    expand_ratio: UnitFloat = Field(
        default=0.05, description="How far a tracking mask grows around the object (0-1)."
    )
    expand_mode: ExpandMode = Field(
        default=ExpandMode.HULL, description="The tracking mask's shape: hull, bbox or original."
    )
    size: Size = Field(default=Size.LANDSCAPE_16_9, description="Output width*height.")


class VideoEditJob(_Job):
    """Repaint the masked area of a video."""

    input: VideoEditInput
    parameters: VideoEditParameters = Field(default_factory=VideoEditParameters)


# --- video_extension ---------------------------------------------------------------


class VideoExtensionInput(_Input):
    function: Literal[Function.VIDEO_EXTENSION] = Function.VIDEO_EXTENSION
    prompt: Prompt = Field(description="What happens in the generated part.")
    first_frame_url: Url | None = Field(
        default=None, description="The image the video starts from."
    )
    last_frame_url: Url | None = Field(default=None, description="The image the video ends on.")
    first_clip_url: Url | None = Field(
        default=None,
        description="A clip the video continues (its end is kept, at most 3 s in all).",
    )
    last_clip_url: Url | None = Field(
        default=None, description="A clip the video leads into (its start is kept)."
    )
    video_url: Url | None = Field(
        default=None, description="A motion guide; needs parameters.control_condition."
    )

    one_of: ClassVar[tuple[str, ...]] = (
        "first_frame_url",
        "last_frame_url",
        "first_clip_url",
        "last_clip_url",
    )

    @model_validator(mode="after")
    def _something_to_extend(self) -> Self:
        if not any(getattr(self, name) for name in self.one_of):
            raise ValueError(f"video_extension needs at least one of {', '.join(self.one_of)}")
        return self


class VideoExtensionParameters(_Parameters):
    control_condition: ControlCondition | Literal[""] = Field(
        default="", description="What to take from the guide video."
    )


class VideoExtensionJob(_Job):
    """Continue from frames or clips (first/last) into 5 s of video."""

    input: VideoExtensionInput
    parameters: VideoExtensionParameters = Field(default_factory=VideoExtensionParameters)

    @model_validator(mode="after")
    def _guide_needs_condition(self) -> Self:
        if self.input.video_url and not self.parameters.control_condition:
            raise ValueError(
                "parameters.control_condition is required when input.video_url is given "
                f"(one of {', '.join(c.value for c in ControlCondition)})"
            )
        return self


# --- video_outpainting -------------------------------------------------------------


class VideoOutpaintingInput(_Input):
    function: Literal[Function.VIDEO_OUTPAINTING] = Function.VIDEO_OUTPAINTING
    prompt: Prompt = Field(description="What the new surroundings should show.")
    video_url: Url = Field(description="The video to extend (cut to its first 5 s).")


class VideoOutpaintingParameters(_Parameters):
    top_scale: Scale = Field(
        default=1.0, description="Extend upward by this ratio (1 = not at all, 2 = double)."
    )
    bottom_scale: Scale = Field(default=1.0, description="Extend downward by this ratio (1-2).")
    left_scale: Scale = Field(default=1.0, description="Extend to the left by this ratio (1-2).")
    right_scale: Scale = Field(default=1.0, description="Extend to the right by this ratio (1-2).")


class VideoOutpaintingJob(_Job):
    """Extend a video's picture beyond its borders."""

    input: VideoOutpaintingInput
    parameters: VideoOutpaintingParameters = Field(default_factory=VideoOutpaintingParameters)


# --- the union ---------------------------------------------------------------------


def _function_of(value: Any) -> str | None:
    if isinstance(value, dict):
        inp = value.get("input")
        return inp.get("function") if isinstance(inp, dict) else None
    inp = getattr(value, "input", None)
    function = getattr(inp, "function", None)
    return str(function.value if isinstance(function, StrEnum) else function) if function else None


Job = Annotated[
    Annotated[ImageReferenceJob, Tag(Function.IMAGE_REFERENCE.value)]
    | Annotated[VideoRepaintingJob, Tag(Function.VIDEO_REPAINTING.value)]
    | Annotated[VideoEditJob, Tag(Function.VIDEO_EDIT.value)]
    | Annotated[VideoExtensionJob, Tag(Function.VIDEO_EXTENSION.value)]
    | Annotated[VideoOutpaintingJob, Tag(Function.VIDEO_OUTPAINTING.value)],
    Discriminator(
        _function_of,
        custom_error_type="invalid_function",
        custom_error_message=(
            "input.function must be one of " + ", ".join(f.value for f in Function)
        ),
    ),
]
"""Any VACE job; pydantic picks the model from `input.function`."""

JOB_ADAPTER: TypeAdapter[Job] = TypeAdapter(Job)

JOB_TYPES: dict[Function, type[_Job]] = {
    Function.IMAGE_REFERENCE: ImageReferenceJob,
    Function.VIDEO_REPAINTING: VideoRepaintingJob,
    Function.VIDEO_EDIT: VideoEditJob,
    Function.VIDEO_EXTENSION: VideoExtensionJob,
    Function.VIDEO_OUTPAINTING: VideoOutpaintingJob,
}


def parse_job(body: dict[str, Any] | str | bytes) -> Job:
    """Parse a request body (dict or JSON) into its typed job; raises pydantic's ValidationError."""
    if isinstance(body, str | bytes):
        return JOB_ADAPTER.validate_json(body)
    return JOB_ADAPTER.validate_python(body)
