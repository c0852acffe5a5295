import pytest

from mlops_actions.core import manifest
from mlops_actions.core.errors import InputError


def test_manifest_roundtrip_and_mismatch(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "a.bin").write_bytes(b"x")
    (tmp_path / "b.txt").write_text("y")
    manifest.write(tmp_path)
    assert set(manifest.verify(tmp_path)) == {"model/a.bin", "b.txt"}
    (tmp_path / "b.txt").write_text("tampered")
    with pytest.raises(InputError, match="changed: b.txt"):
        manifest.verify(tmp_path)
    (tmp_path / "b.txt").write_text("y")
    (tmp_path / "extra").write_text("z")
    with pytest.raises(InputError, match="unlisted: extra"):
        manifest.verify(tmp_path)


