"""Constants of the fake BFL API: spec paths, FLUX 3 tiers, keys, polling URL templates, statuses."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
#: BFL's own OpenAPI as of late 2026 (FLUX 3 Image, ``user``, the new statuses); see tests/specs/README.md.
DEFAULT_SPEC_PATH = REPO_ROOT / "tests" / "specs" / "bfl-openapi-2026.json"
#: The 2026-04 snapshot, kept beside it (``BFL_OPENAPI_SPEC`` may point the fake at it).
SPEC_2026_04_PATH = REPO_ROOT / "tests" / "specs" / "bfl-openapi.json"
#: FLUX 3 Image's reconstructed schema: the limits BFL documents in prose (prompt ≤ 15,000 characters,
#: 1–10 images), checked on top of the spec's own schema (and the whole schema for a spec without it).
FLUX3_SPEC_PATH = REPO_ROOT / "tests" / "specs" / "bfl-flux3-image.json"
FLUX3_MODEL = "flux-3-image"
FLUX3_TIER_PIXELS = {"768sq": 768 * 768, "1k": 1024 * 1024, "1.5k": 1536 * 1536, "2k": 2048 * 2048, "4k": 4096 * 4096}
FLUX3_INPUT_MIN_SIDE = 256
FLUX3_INPUT_MAX_PIXELS = 16_000_000

DEFAULT_API_KEY = "test-bfl-key"
MASK = "<redacted>"
_SECRET_HEADERS = frozenset({"x-key", "authorization", "cookie"})

#: Polling URL templates for :attr:`Behaviour.polling_url`. Fields: ``{base}`` (this fake),
#: ``{other}`` (the :class:`FakeDeliveryHost`, i.e. a foreign host) and ``{id}`` (the task id).
DEFAULT_POLLING = "{base}/v1/get_result?id={id}"
REGIONAL_POLLING = "{base}/regional/v1/get_result?id={id}&cluster=eu2"
FOREIGN_POLLING = "{other}/v1/get_result?id={id}"
#: Where :attr:`Behaviour.poll_redirect` sends a poll: ``same`` → this fake under another path,
#: ``other`` → the :class:`FakeDeliveryHost` (another origin), ``loop`` → the very same URL again.
MOVED_POLLING_PATH = "/moved/v1/get_result"

TERMINAL_STATUSES = ("Ready", "Request Moderated", "Content Moderated", "Error", "Task not found", "Failed")
#: ``Behaviour.stages`` of a FLUX 3 task: it thinks about the prompt, then renders.
FLUX3_STAGES = ("Pending", "Reasoning", "Generating")

FLUX2_MAX_PIXELS = 2048 * 2048  # documented: up to 4 MP

#: The FLUX Tools routes the fake serves (the bot's result buttons use them), with BFL's own schemas.
TOOL_ROUTES = ("/v1/flux-tools/deblur-v1", "/v1/flux-tools/outpainting-v1")
#: Deblur's input limit, "at most 4 MP" (BFL's SDK; not in the schema), read as FLUX.2's 2048² (it runs on [klein] 9B).
DEBLUR_MAX_PIXELS = FLUX2_MAX_PIXELS

#: FLUX 3 video (the Animate button): its route, the stages it plays, its per-second prices (credits) and cap.
VIDEO_MODEL = "flux-3-video"
VIDEO_SPEC_PATH = REPO_ROOT / "tests" / "specs" / "bfl-flux-3-video.json"
VIDEO_STAGES = ("Pending", "Reasoning", "Generating")
#: Credits per second of output, by mode and resolution: BFL's list for hd/fhd/draft (t2v and i2v alike; v2v
#: dearer); qhd/uhd derived from a reseller (UNCONFIRMED), which the bot does not offer.
VIDEO_SECOND_PRICES = {
    "hd": 17,
    "fhd": 29,
    "qhd": 32,
    "uhd": 46,
    "draft": 6,
    "v2v-hd": 43,
    "v2v-fhd": 54,
    "v2v-draft": 12,
}
#: The short side of each video resolution class (the long side follows the aspect ratio).
VIDEO_SHORT_SIDES = {"hd": 720, "fhd": 1080, "qhd": 1440, "uhd": 2160}
VIDEO_MAX_ACTIVE = 5  # "5 active generations per organization"
VIDEO_URL_TTL = 2 * 3600  # video result URLs last about 2 h (se=)

#: Outpainting's canvas limit, width × height ≤ 4 MP (BFL's SDK; not in the schema), 2048².
OUTPAINTING_MAX_PIXELS = 2048 * 2048

#: The FLUX.2 [klein] LoRA routes the fake serves (a LoRA style's), each validated against its own reconstructed
#: schema file (BFL's ``openapi.json`` lacks them; see tests/specs/README.md).
LORA_ROUTES: dict[str, Path] = {
    f"flux-2-klein-{size}-finetuned": REPO_ROOT / "tests" / "specs" / f"bfl-flux-2-klein-{size}-finetuned.json"
    for size in ("4b", "9b")
}
#: The LoRAs on the fake account's dashboard (``FakeBfl.finetunes`` starts with these; tests may change it).
KNOWN_FINETUNES = frozenset({"fluxcord-house", "acme-org/mascot_v2"})
#: How the fake answers a ``finetune_id`` its account does not have: BFL documents no answer; the one public
#: trace (FLUX.1 finetuned inference, 2025) is ``{"detail": "Finetune not found or not ready"}``, a plain
#: FastAPI ``HTTPException``; its status is not recorded, so the fake uses the natural one, 404, at submit.
UNKNOWN_FINETUNE_STATUS = 404
UNKNOWN_FINETUNE_DETAIL = "Finetune not found or not ready"
