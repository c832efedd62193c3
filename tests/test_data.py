import io
import tarfile

import pytest
import torch
from helpers import SHARED_CIFAR
from PIL import Image

from beta_core.data import (
    DataConfig,
    DataSourceError,
    DeviceLoader,
    balanced_subset,
    load_splits,
    make_synthetic,
    read_image_tree,
    resolve_source,
    train_images,
)


def _write_tree(root, classes=("a", "b"), per=3):
    for split in ("train", "test"):
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per):
                Image.new("RGB", (32, 32), (40 * ci, 10 * i, 200)).save(d / f"{i}.png")


def test_synthetic_deterministic_and_labelled():
    a, b = make_synthetic(100, 50, seed=1), make_synthetic(100, 50, seed=1)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x.dtype == torch.uint8 and a.train_x.shape == (100, 3, 32, 32)
    assert a.synthetic and "synthetic" in a.name
    assert a.train_y.bincount().tolist() == [10] * 10
    assert not torch.equal(make_synthetic(100, 50, seed=2).train_x, a.train_x)


def test_folder_and_tar(tmp_path):
    _write_tree(tmp_path / "tree")
    s = read_image_tree(tmp_path / "tree")
    assert s.classes == ("a", "b") and s.train_x.shape == (6, 3, 32, 32) and s.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    assert s.train_x[0, 2, 0, 0] == 200  # channel order RGB, layout NCHW
    tar = tmp_path / "tree.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(tmp_path / "tree", arcname="mydata")
    s2 = read_image_tree(tar)
    assert torch.equal(s.train_x, s2.train_x) and torch.equal(s.test_y, s2.test_y)


def test_a_decode_reports_its_progress_and_stops_on_request(tmp_path, monkeypatch):
    """The first decode of a tree says how far it is (done of total images, every
    PROGRESS_EVERY and at the end, a tar's too), and an exception from the callback (a cancel)
    stops it with nothing cached."""
    import beta_core.data as data

    monkeypatch.setattr(data, "PROGRESS_EVERY", 4)
    _write_tree(tmp_path / "tree", per=5)  # 20 images
    seen = []
    read_image_tree(tmp_path / "tree", lambda d, t: seen.append((d, t)))
    assert seen == [(4, 20), (8, 20), (12, 20), (16, 20), (20, 20), (20, 20)]
    tar = tmp_path / "tree.tar"
    with tarfile.open(tar, "w") as t:
        t.add(tmp_path / "tree", arcname="tree")
    seen.clear()
    read_image_tree(tar, lambda d, t: seen.append((d, t)))
    assert seen[-1] == (20, 20)

    def cancel(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_splits(DataConfig("folder", str(tmp_path / "tree")), tmp_path / "d", cancel)
    assert not list((tmp_path / "d").rglob("*.pt"))  # a stopped decode leaves no cache


def test_checking_a_folder_without_decoding_reads_its_listing(tmp_path):
    """The app's check lists the tree (classes, sizes, the training count) and decodes nothing:
    its runs decode it, visibly; a corrupt image then fails the run. The CLI's check decodes."""
    from beta_core.data import check_source

    _write_tree(tmp_path / "tree", per=5)
    (tmp_path / "tree" / "train" / "a" / "bad.jpg").write_bytes(b"not an image")
    cfg = DataConfig("folder", str(tmp_path / "tree"), val_fraction=0.0)
    assert check_source(cfg, tmp_path / "d", decode=False) == "folder"
    assert not (tmp_path / "d").exists()  # nothing decoded, nothing cached
    assert train_images(cfg, tmp_path / "d") == 11  # counted from the listing: the corrupt file too
    with pytest.raises(DataSourceError, match="Unreadable image .*bad.jpg"):
        check_source(cfg, tmp_path / "d")
    (tmp_path / "tree" / "train" / "a" / "bad.jpg").unlink()
    check_source(cfg, tmp_path / "d")
    assert train_images(cfg, tmp_path / "d") == len(load_splits(cfg, tmp_path / "d").train_y) == 10


def test_cache_is_used_and_corrupt_cache_rebuilt(tmp_path):
    _write_tree(tmp_path / "tree")
    cfg = DataConfig("folder", str(tmp_path / "tree"))
    first = load_splits(cfg, tmp_path / "data")
    files = list((tmp_path / "data" / "cache").glob("*.pt"))
    assert len(files) == 1
    # partial file: truncated in the middle
    blob = files[0].read_bytes()
    files[0].write_bytes(blob[: len(blob) // 2])
    again = load_splits(cfg, tmp_path / "data")
    assert torch.equal(first.train_x, again.train_x)
    assert len(files[0].read_bytes()) == len(blob)  # rebuilt
    # silent corruption: pixels changed, checksum no longer matches
    d = torch.load(files[0], weights_only=True)
    d["train_x"][0, 0, 0, 0] ^= 1
    torch.save(d, files[0])
    assert torch.equal(load_splits(cfg, tmp_path / "data").train_x, first.train_x)


def test_subsets_are_class_balanced():
    y = torch.arange(1000) % 10
    idx = balanced_subset(y, 200, seed=0)
    assert len(idx) == 200 and y[idx].bincount().tolist() == [20] * 10
    assert torch.equal(idx, balanced_subset(y, 200, seed=0))
    s = load_splits(DataConfig("synthetic", train_subset=100, test_subset=50, synthetic_train=500,
                               synthetic_test=100))
    assert s.train_y.bincount().tolist() == [10] * 10 and len(s.test_y) == 50


def test_loader_deterministic_and_augments(tiny_splits):
    s = tiny_splits
    mean, std = s.mean_std
    mk = lambda seed: DeviceLoader(s.train_x, s.train_y, 64, mean, std, train=True, seed=seed)  # noqa: E731
    b1, b2 = next(mk(0).epoch(0)), next(mk(0).epoch(0))
    assert torch.equal(b1[0], b2[0]) and torch.equal(b1[1], b2[1])
    assert not torch.equal(next(mk(0).epoch(1))[1], b1[1])  # new order each epoch
    assert not torch.equal(next(mk(1).epoch(0))[1], b1[1])  # and per seed
    assert b1[0].shape == (64, 3, 32, 32) and b1[0].dtype == torch.float32
    assert sum(len(y) for _, y in mk(0).epoch(0)) == 400 and len(mk(0)) == 7
    # test loader: fixed order, no augmentation, normalised exactly
    t = DeviceLoader(s.test_x, s.test_y, 200, mean, std, train=False)
    xb, yb = next(t.epoch(0))
    ref = (s.test_x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(xb, ref, atol=1e-5) and torch.equal(yb, s.test_y)


def test_crop_is_a_shifted_window():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32).to(torch.uint8)
    loader = DeviceLoader(x, torch.tensor([0, 1]), 2, [0, 0, 0], [1 / 255] * 3, train=True, flip=False)
    xb, yb = next(loader.epoch(0))
    for img, label in zip(xb, yb):
        src = torch.nn.functional.pad(x[label:label + 1].float(), (4, 4, 4, 4), mode="reflect")[0]
        hits = [(r, c) for r in range(9) for c in range(9) if torch.equal(src[:, r:r + 32, c:c + 32], img)]
        assert len(hits) >= 1


def test_auto_source(tmp_path, monkeypatch):
    monkeypatch.delenv("BETA_DATA_PATH", raising=False)
    assert resolve_source(DataConfig("auto"), tmp_path) == ("synthetic", None)
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")
    assert resolve_source(DataConfig("auto"), tmp_path) == ("cifar10", None)
    monkeypatch.setenv("BETA_DATA_PATH", str(tmp_path))
    assert resolve_source(DataConfig("auto"), tmp_path) == ("folder", str(tmp_path))
    monkeypatch.setenv("BETA_DATA_PATH", "/somewhere")
    with pytest.raises(ValueError, match="BETA_DATA_PATH='/somewhere' .expected an existing"):
        resolve_source(DataConfig("auto"), tmp_path)


def test_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("BETA_DATA_PATH", raising=False)
    with pytest.raises(ValueError, match="Unknown dataset: 'imagenet'"):
        DataConfig("imagenet")
    with pytest.raises(DataSourceError, match="needs a path"):
        load_splits(DataConfig("folder"), tmp_path)
    with pytest.raises(DataSourceError, match="Data path not found"):
        load_splits(DataConfig("folder", str(tmp_path / "nope")), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="Not a dataset: .* no train/ and test/ folders"):
        load_splits(DataConfig("folder", str(tmp_path / "empty")), tmp_path)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar at all")
    with pytest.raises(DataSourceError, match="Unreadable archive .*bad.tar.gz"):
        load_splits(DataConfig("folder", str(bad)), tmp_path)
    for c in ("a", "b"):
        (tmp_path / "t" / "train" / c).mkdir(parents=True)
        (tmp_path / "t" / "test" / c).mkdir(parents=True)
    (tmp_path / "t" / "train" / "a" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataSourceError, match="Unreadable image"):
        read_image_tree(tmp_path / "t")
    with pytest.raises(ValueError, match="batch_size: 0"):
        DeviceLoader(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4), 0, [0] * 3, [1] * 3, True)


def test_cifar10_without_network_says_where_to_put_it(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise RuntimeError("Network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataSourceError) as err:
        load_splits(DataConfig("cifar10"), tmp_path)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "--data-path" in msg and "BETA_DATA_PATH" in msg


@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason=f"local CIFAR-10 copy not found at {SHARED_CIFAR}")
@pytest.mark.slow
def test_shared_cifar10_archive(tmp_path):
    s = load_splits(DataConfig("folder", str(SHARED_CIFAR), test_subset=1000), tmp_path)
    assert s.train_x.shape == (45000, 3, 32, 32) and len(s.val_y) == 5000 and len(s.test_y) == 1000  # val: 10%
    assert s.classes[0] == "airplane" and s.classes[-1] == "truck"


def test_mean_std_chunked_and_kept_by_replace(tiny_splits):
    from dataclasses import replace

    s = make_synthetic(300, 50, seed=3)
    x = s.train_x.float() / 255
    mean, std = s.mean_std
    assert mean == pytest.approx(x.mean((0, 2, 3)).tolist(), abs=1e-6)
    assert std == pytest.approx(x.std((0, 2, 3)).tolist(), abs=1e-6)
    # derived splits (surgery trains on other images) keep the parent's normalisation
    other = replace(s, train_x=s.test_x, train_y=s.test_y)
    assert other.mean_std == (mean, std)


def _tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 30, 200)).save(buf, "JPEG")
    return buf.getvalue()


def test_check_source_refuses_what_is_not_a_dataset_before_scanning(tmp_path):
    import time

    from beta_core.data import check_source

    t0 = time.monotonic()
    with pytest.raises(DataSourceError, match="Not a dataset: '/' has no train/ and test/"):
        check_source(DataConfig("folder", "/"), tmp_path)
    assert time.monotonic() - t0 < 5  # refused from a listing, not after walking the filesystem
    with pytest.raises(DataSourceError, match="Not a dataset"):
        read_image_tree("/")


def test_check_source_archive_errors_name_the_file(tmp_path):
    from beta_core.data import check_source

    jpg = _jpeg()
    no_test = _tar(tmp_path / "no_test.tar.gz", {"train/a/1.jpg": jpg})
    with pytest.raises(DataSourceError, match="Not a dataset: .*no_test.tar.gz"):
        check_source(DataConfig("folder", str(no_test)), tmp_path)
    mismatch = _tar(tmp_path / "mismatch.tar.gz", {"train/a/1.jpg": jpg, "test/b/1.jpg": jpg})
    with pytest.raises(DataSourceError, match=r"Class folders differ between train/ \['a'\] and test/ \['b'\]"):
        check_source(DataConfig("folder", str(mismatch)), tmp_path)
    good = _tar(tmp_path / "good.tar.gz", {f"cifar/{s}/{c}/{i}.jpg": jpg for s in ("train", "test")
                                           for c in ("a", "b") for i in range(3)})
    assert check_source(DataConfig("folder", str(good)), tmp_path) == "folder"  # one level down is fine
    assert len(read_image_tree(good).train_y) == 6
    data = good.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataSourceError, match="Corrupt archive .*cut.tar.gz.*cut short"):
        check_source(DataConfig("folder", str(cut)), tmp_path)


def test_unwritable_cache_costs_only_the_cache(tmp_path):
    """The cache folder cannot be made (here a file is in its way; a read-only data folder fails
    the same mkdir): the data still loads."""
    (tmp_path / "cache").write_text("in the way")
    s = load_splits(DataConfig("synthetic", synthetic_train=20, synthetic_test=20), tmp_path)
    assert len(s.train_y) + len(s.val_y) == 20 and (tmp_path / "cache").is_file()


def test_synthetic_sizes_have_a_bound():
    with pytest.raises(ValueError, match=r"synthetic_train: 100000000000 \(expected an integer in \[10, 1,000,000\]"):
        DataConfig("synthetic", synthetic_train=10 ** 11)


def test_a_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    """A small .tar.gz holding one huge zero-filled "image": refused by the data check from the
    member's size, before a byte of it is inflated; the cap is BETA_MAX_IMAGE_MB."""
    from beta_core.data import check_source

    monkeypatch.setenv("BETA_MAX_IMAGE_MB", "1")
    jpg = _jpeg()
    members = {f"{s}/{c}/{i}.jpg": jpg for s in ("train", "test") for c in ("a", "b") for i in range(2)}
    bomb = _tar(tmp_path / "bomb.tar.gz", {**members, "train/a/zero.jpg": bytes(3_000_000)})
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataSourceError, match=r"Image file too large .*zero.jpg: 3 MB \(expected at most 1 MB"):
        check_source(DataConfig("folder", str(bomb)), tmp_path)
    with pytest.raises(DataSourceError, match="too large"):
        read_image_tree(bomb)
    monkeypatch.setenv("BETA_MAX_IMAGE_MB", "4")  # under a raised cap it is read, and is no image
    with pytest.raises(DataSourceError, match="Unreadable image .*zero.jpg"):
        check_source(DataConfig("folder", str(bomb)), tmp_path)


def test_pixel_bomb_is_refused(tmp_path, monkeypatch):
    import beta_core.data as data

    monkeypatch.setattr(data, "MAX_PIXELS", 100 * 100)
    big = io.BytesIO()
    Image.new("RGB", (200, 200)).save(big, "PNG")  # a few hundred bytes, 40,000 pixels
    with pytest.raises(DataSourceError, match=r"Image too large x.png: 200 x 200 pixels"):
        data._decode(big.getvalue(), "x.png")


@pytest.mark.parametrize("case,msg", [
    ("corrupt", r"Unreadable image .*b/0.png"),
    ("empty", r"No images in train/b"),
    ("single", r"One class \(a\)"),
])
def test_check_source_decodes_before_any_run(tmp_path, case, msg):
    """What only decoding shows (a corrupt image, an empty class folder) and a single class are
    refused by the data check, so no run is created to fail."""
    from beta_core.data import check_source

    _write_tree(tmp_path / "tree", classes=("a",) if case == "single" else ("a", "b"))
    if case == "corrupt":
        (tmp_path / "tree" / "test" / "b" / "0.png").write_bytes(b"not an image")
    if case == "empty":
        for f in (tmp_path / "tree" / "train" / "b").iterdir():
            f.unlink()
    with pytest.raises(DataSourceError, match=msg):
        check_source(DataConfig("folder", str(tmp_path / "tree")), tmp_path / "data")


def test_a_killed_cache_save_leaves_no_temp_file_behind(tmp_path):
    import subprocess
    import sys

    from beta_core.data import _cache_file

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    file = _cache_file(tmp_path, "synthetic:20:20:0")
    file.parent.mkdir(parents=True)
    stale = file.with_suffix(f".tmp{dead.pid}")
    stale.write_bytes(b"half a cache")
    load_splits(DataConfig("synthetic", synthetic_train=20, synthetic_test=20), tmp_path)
    assert file.exists() and not stale.exists()


def test_undecodable_image_message_has_no_buffer_repr(tmp_path):
    from beta_core.data import _decode

    with pytest.raises(DataSourceError) as e:
        _decode(b"not an image", "x.jpg")
    assert "object at 0x" not in str(e.value) and "x.jpg" in str(e.value)
