"""Hostile input images: where they may come from, what they may be, and what reaches BFL."""

from __future__ import annotations

import base64
import io
import struct
import threading
import zlib

import pytest
from aiohttp import web
from PIL import Image

from bot.images.codec import bomb_warnings_as_errors
from bot.images.inputs import (
    MAX_INPUT_BYTES,
    BadInputImage,
    InputFetcher,
    prepare,
    prepare_image,
    sniff,
)
from bot.models import MODELS

FLUX2 = {"max_megapixels": 4.0, "min_side": 64}
FLUX3 = {"max_megapixels": 16.0, "min_side": 256}


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def decoded(b64: str) -> bytes:
    return base64.b64decode(b64, validate=True)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG declaring 30,000×30,000 pixels (900 MP) in a few hundred bytes of zeros."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
    return b"\x89PNG\r\n\x1a\n" + header + idat + png_chunk(b"IEND", b"")


def gif_header(width: int, height: int) -> bytes:
    """A GIF whose screen and first frame declare ``width``×``height`` (a few bytes of image data)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


# -- what the bytes are -----------------------------------------------------------------------


def test_a_text_file_named_png_is_refused():
    """The name says PNG, the bytes say text: refused by sniffing, with a clear message."""
    with pytest.raises(BadInputImage, match="isn't a PNG, JPEG, WebP or GIF"):
        prepare_image(b"hello, this is not an image\n" * 10, **FLUX2)


def test_sniffing_reads_the_bytes():
    """PNG, JPEG, WebP and GIF are recognised by their signatures, nothing else."""
    red = Image.new("RGB", (32, 32), "red")
    assert sniff(encode(red, "PNG")) == "PNG"
    assert sniff(encode(red, "JPEG")) == "JPEG"
    assert sniff(encode(red, "WEBP")) == "WEBP"
    assert sniff(encode(red, "GIF")) == "GIF"
    with pytest.raises(BadInputImage):
        sniff(encode(red, "BMP"))
    with pytest.raises(BadInputImage):
        sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # RIFF, but audio


def test_a_truncated_png_is_refused():
    """Half a PNG decodes to an error, not to half an image sent to BFL."""
    noise = Image.frombytes("RGB", (256, 256), bytes(range(256)) * 768)
    data = encode(noise, "PNG")
    with pytest.raises(BadInputImage, match="truncated or damaged"):
        prepare_image(data[: len(data) // 2], **FLUX2)


def test_a_30000_square_png_bomb_is_refused_before_decoding():
    """900 declared megapixels are refused from the header; the file is tiny, nothing is decoded."""
    bomb = png_bomb()
    assert len(bomb) < 1000
    with pytest.raises(BadInputImage, match="too large to process"):
        prepare_image(bomb, **FLUX3)


def test_a_huge_gif_is_refused_and_an_animated_gif_gives_its_first_frame():
    """A GIF declaring 60,000×60,000 is a bomb; a 40-frame GIF becomes one still image."""
    with pytest.raises(BadInputImage, match="too large to process"):
        prepare_image(gif_header(60_000, 60_000), **FLUX2)
    frames = [Image.new("RGB", (300, 200), (i * 6, 0, 0)) for i in range(40)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    out = prepare_image(buffer.getvalue(), **FLUX2)
    with Image.open(io.BytesIO(decoded(out.data_b64))) as image:
        assert image.format == "JPEG" and getattr(image, "n_frames", 1) == 1
        assert image.size == (300, 200)
        assert image.getpixel((10, 10))[0] < 8  # the first frame (black-ish), not a later red one


def test_a_file_over_20_mib_is_refused():
    """Over the byte cap: refused without being opened."""
    with pytest.raises(BadInputImage, match="too big"):
        prepare_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_INPUT_BYTES, **FLUX2)


# -- what leaves ------------------------------------------------------------------------------


def test_gps_exif_is_gone_from_what_bfl_receives():
    """A photo with GPS coordinates and a camera name: the re-encoded input has no EXIF at all."""
    photo = Image.new("RGB", (640, 480), (20, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = 1  # Orientation
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps
    data = encode(photo, "JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(0x8825)  # the test file really has GPS
    out = prepare_image(data, **FLUX2)
    sent = decoded(out.data_b64)
    with Image.open(io.BytesIO(sent)) as image:
        assert dict(image.getexif()) == {}
        assert "exif" not in image.info
    assert b"SecretCam" not in sent and b"Exif" not in sent


def test_exif_orientation_is_applied_before_stripping():
    """A portrait photo stored sideways with Orientation=6 arrives upright (the tag itself is gone)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(Image.new("RGB", (400, 300), "green"), "JPEG", exif=exif.tobytes())
    out = prepare_image(data, **FLUX2)
    assert (out.width, out.height) == (300, 400)


def test_png_text_chunks_and_alpha_do_not_survive():
    """Text chunks are dropped; transparency is flattened onto white; the output is JPEG."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home address: 1 Secret Lane")
    data = encode(Image.new("RGBA", (200, 200), (0, 0, 0, 0)), "PNG", pnginfo=info)
    sent = decoded(prepare_image(data, **FLUX2).data_b64)
    assert b"Secret Lane" not in sent
    with Image.open(io.BytesIO(sent)) as image:
        assert image.format == "JPEG" and image.getpixel((5, 5)) == pytest.approx((255, 255, 255), abs=2)


def test_downscaled_to_what_the_model_accepts():
    """24 MP becomes ≤ 4 MP for FLUX.2 and ≤ 16 MP for FLUX 3; a tiny image is raised to FLUX 3's 256 px."""
    big = encode(Image.new("RGB", (6000, 4000), "blue"), "JPEG", quality=50)
    flux2 = prepare_image(big, **FLUX2)
    assert flux2.pixels <= 4_000_000 and abs(flux2.width / flux2.height - 1.5) < 0.01
    flux3 = prepare_image(big, **FLUX3)
    assert 4_000_000 < flux3.pixels <= 16_000_000
    tiny = prepare_image(encode(Image.new("RGB", (100, 120), "blue"), "PNG"), **FLUX3)
    assert min(tiny.width, tiny.height) >= 256
    with pytest.raises(BadInputImage, match="too small"):
        prepare_image(encode(Image.new("RGB", (8, 8), "blue"), "PNG"), **FLUX2)
    with pytest.raises(BadInputImage, match="too narrow"):
        prepare_image(encode(Image.new("RGB", (6500, 100), "blue"), "PNG"), **FLUX2)


def test_input_images_and_uploads_share_one_pillow_open_lock():
    """``warnings.catch_warnings`` swaps process-global state: every Pillow open in the bot takes one lock.

    While the codec (uploads) holds it, an input image waits; before, each module had its own lock.
    """
    data = encode(Image.new("RGB", (100, 100), "blue"), "PNG")
    done = threading.Event()
    worker = threading.Thread(target=lambda: (prepare_image(data, **FLUX2), done.set()))
    with bomb_warnings_as_errors():
        worker.start()
        assert not done.wait(0.2)  # the input image waits for the codec's open
    assert done.wait(10)
    worker.join()


async def test_prepare_uses_the_models_limits():
    """prepare() reads the limits from the model table (and runs off the event loop)."""
    data = encode(Image.new("RGB", (100, 100), "blue"), "PNG")
    assert min((await prepare(data, MODELS["flux-3-image"])).width, 256) == 256
    assert (await prepare(data, MODELS["flux-2-pro"])).width == 100


# -- where from -------------------------------------------------------------------------------


def test_only_discords_cdn_or_the_configured_discord_host():
    """CDN hosts over https; the host of DISCORD_API_URL (any port) when it points elsewhere; nothing else."""
    real = InputFetcher("https://discord.com/api/v10")
    assert real.allowed("https://cdn.discordapp.com/attachments/1/2/a.png?ex=1")
    assert real.allowed("https://media.discordapp.net/attachments/1/2/a.png")
    assert not real.allowed("http://cdn.discordapp.com/attachments/1/2/a.png")  # not https
    assert not real.allowed("https://cdn.discordapp.com.evil.example/a.png")
    assert not real.allowed("https://evil.example/a.png")
    assert not real.allowed("https://169.254.169.254/latest/meta-data")
    assert not real.allowed("https://discord.com/api/v10/x.png")
    local = InputFetcher("http://127.0.0.1:4567/api/v10")
    assert local.allowed("http://127.0.0.1:4567/attachments/1/2/a.png")
    assert local.allowed("http://127.0.0.1:9999/attachments/1/2/a.png")  # its CDN on another port: same host
    assert local.allowed("https://127.0.0.1/attachments/1/2/a.png")
    assert local.allowed("https://cdn.discordapp.com/attachments/1/2/a.png")  # Discord's CDN stays allowed
    assert not local.allowed("http://127.0.0.2:4567/attachments/1/2/a.png")  # another host
    assert not local.allowed("http://localhost:4567/attachments/1/2/a.png")  # a name is another host too
    assert not local.allowed("ftp://127.0.0.1:4567/a.png")
    assert not local.allowed("http://127.0.0.1:99999/a.png")  # no such port
    assert not local.allowed("not a url at all")


def test_an_explicit_cdn_url_adds_exactly_its_origin_and_path():
    """DISCORD_CDN_URL: that scheme, host, port and path prefix; the API host rule still applies."""
    fetcher = InputFetcher("https://discord.com/api/v10", cdn_url="https://cdn.proxy.example:8443/discord")
    assert fetcher.allowed("https://cdn.proxy.example:8443/discord/attachments/1/2/a.png")
    assert fetcher.allowed("https://cdn.discordapp.com/attachments/1/2/a.png")
    assert not fetcher.allowed("https://cdn.proxy.example/discord/attachments/1/2/a.png")  # another port
    assert not fetcher.allowed("http://cdn.proxy.example:8443/discord/attachments/1/2/a.png")  # another scheme
    assert not fetcher.allowed("https://cdn.proxy.example:8443/elsewhere/a.png")  # outside its path
    assert not fetcher.allowed("https://cdn.proxy.example:8443/discordx/a.png")
    assert not fetcher.allowed("https://proxy.example:8443/discord/a.png")
    root = InputFetcher("http://127.0.0.1:4567/api/v10", cdn_url="http://127.0.0.2:5000")
    assert root.allowed("http://127.0.0.2:5000/attachments/1/2/a.png")
    assert not root.allowed("http://127.0.0.2:5001/attachments/1/2/a.png")
    assert root.allowed("http://127.0.0.1:5001/attachments/1/2/a.png")  # the API's host, any port


@pytest.fixture
async def server():
    """A loopback HTTP server playing Discord's CDN (and a hostile one)."""
    png = encode(Image.new("RGB", (64, 64), "red"), "PNG")

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    async def huge(_request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the cap must hold while streaming
        await response.prepare(_request)
        for _ in range(25):
            await response.write(b"\x00" * (1024 * 1024))
        return response

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data")

    app = web.Application()
    app.router.add_get("/attachments/ok.png", ok)
    app.router.add_get("/attachments/huge.png", huge)
    app.router.add_get("/attachments/redirect.png", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fetcher = InputFetcher(f"http://127.0.0.1:{port}/api/v10")
    yield fetcher, f"http://127.0.0.1:{port}", png
    await fetcher.close()
    await runner.cleanup()


async def test_fetch_reads_an_allowed_attachment(server):
    fetcher, base, png = server
    assert await fetcher.fetch(f"{base}/attachments/ok.png", declared_size=len(png)) == png


async def test_fetch_refuses_a_body_over_the_cap_while_streaming(server):
    """A server that sends 25 MiB without a Content-Length is cut off at 20 MiB."""
    fetcher, base, _ = server
    with pytest.raises(BadInputImage, match="too big"):
        await fetcher.fetch(f"{base}/attachments/huge.png")


async def test_fetch_refuses_a_declared_size_over_the_cap_without_a_request(server):
    fetcher, base, _ = server
    with pytest.raises(BadInputImage, match="too big"):
        await fetcher.fetch(f"{base}/attachments/never.png", declared_size=MAX_INPUT_BYTES + 1)


async def test_fetch_never_follows_a_redirect(server):
    """A redirect (to a metadata service, say) is refused, not followed."""
    fetcher, base, _ = server
    with pytest.raises(BadInputImage, match="couldn't download"):
        await fetcher.fetch(f"{base}/attachments/redirect.png")


async def test_fetch_refuses_other_hosts_without_a_request(server):
    fetcher, _, _ = server
    with pytest.raises(BadInputImage, match="only read images attached"):
        await fetcher.fetch("https://evil.example/a.png")
