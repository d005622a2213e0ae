"""Store: atomic Parquet writes with a manifest written last, and the skip-if-finished check."""

import json

import pandas as pd
import pyarrow as pa
import pytest

from sdfb.store import (
    StageKey,
    finish_folder,
    is_finished,
    manifest_path,
    output_hash,
    read_manifest,
    read_table,
    write_table,
)

SCHEMA = pa.schema([("problem_id", pa.string()), ("sample_index", pa.int32())])
KEY = StageKey(schema_version=1, config_hash="cfg-a", input_hashes={"problems": "in-a"})


@pytest.fixture
def table_path(tmp_path):
    frame = pd.DataFrame({"problem_id": ["p1", "p2", "p3"], "sample_index": [0, 1, 2]})
    return write_table(frame, tmp_path / "stage" / "grades.parquet", SCHEMA, KEY, extra={"round": 2})


def test_write_table_writes_parquet_then_a_manifest_and_no_temporary_files(table_path):
    assert sorted(p.name for p in table_path.parent.iterdir()) == [
        "grades.parquet",
        "grades.parquet.manifest.json",
    ]
    manifest = read_manifest(table_path)
    assert manifest["rows"] == 3
    assert manifest["schema"] == ["problem_id", "sample_index"]
    assert manifest["schema_version"] == 1
    assert manifest["config_hash"] == "cfg-a"
    assert manifest["input_hashes"] == {"problems": "in-a"}
    assert manifest["round"] == 2
    assert output_hash(table_path) == manifest["content_hash"]
    back = read_table(table_path)
    assert list(back["problem_id"]) == ["p1", "p2", "p3"]
    assert str(back["sample_index"].dtype) == "int32"  # the declared schema, not pandas' int64


def test_output_is_finished_only_for_the_same_schema_config_and_inputs(table_path):
    assert is_finished(table_path, KEY)
    assert not is_finished(table_path, StageKey(1, "cfg-b", {"problems": "in-a"}))
    assert not is_finished(table_path, StageKey(1, "cfg-a", {"problems": "in-b"}))
    assert not is_finished(table_path, StageKey(1, "cfg-a", {"problems": "in-a", "rollouts": "r"}))
    assert not is_finished(table_path, StageKey(2, "cfg-a", {"problems": "in-a"}))


def test_output_without_its_manifest_or_without_its_file_is_not_finished(table_path):
    manifest = manifest_path(table_path)
    saved = manifest.read_text()
    manifest.unlink()
    assert not is_finished(table_path, KEY)
    manifest.write_text(saved)
    table_path.unlink()
    assert not is_finished(table_path, KEY)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"schema_version": 1, "config_ha', id="truncated-json"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"[1, 2]", id="json-list"),
    ],
)
def test_output_with_a_corrupt_manifest_is_not_finished(table_path, content):
    manifest_path(table_path).write_bytes(content)
    assert is_finished(table_path, KEY) is False


def test_rewriting_a_table_replaces_the_manifest(table_path):
    other = StageKey(1, "cfg-b", {"problems": "in-a"})
    write_table(pd.DataFrame({"problem_id": ["p9"], "sample_index": [0]}), table_path, SCHEMA, other)
    assert is_finished(table_path, other) and not is_finished(table_path, KEY)
    assert read_manifest(table_path)["rows"] == 1
    assert [p.name for p in table_path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_read_table_without_a_manifest_says_the_stage_did_not_finish(table_path):
    manifest_path(table_path).unlink()
    with pytest.raises(
        FileNotFoundError, match="has no manifest: the stage that writes it did not finish"
    ) as info:
        read_table(table_path)
    assert str(table_path) in str(info.value)


def test_finish_folder_hash_changes_when_a_file_in_it_changes(tmp_path):
    folder = tmp_path / "checkpoint"
    (folder / "sub").mkdir(parents=True)
    (folder / "adapter.bin").write_bytes(b"weights-1")
    (folder / "sub" / "config.json").write_text(json.dumps({"r": 8}))
    finish_folder(folder, KEY)
    first = output_hash(folder)
    assert is_finished(folder, KEY)
    finish_folder(folder, KEY)
    assert output_hash(folder) == first  # same files, same hash
    (folder / "adapter.bin").write_bytes(b"weights-2")
    finish_folder(folder, KEY)
    assert output_hash(folder) != first
    # The manifest sits beside the folder, so it never hashes itself.
    assert manifest_path(folder).parent == tmp_path


def test_a_truncated_table_is_not_finished_and_is_never_read(table_path):
    from sdfb.store import CorruptOutputError

    data = table_path.read_bytes()
    table_path.write_bytes(data[: len(data) // 2])
    assert not is_finished(table_path, KEY)
    with pytest.raises(CorruptOutputError, match="does not match its manifest"):
        read_table(table_path)


def test_a_table_altered_after_writing_is_not_finished(table_path):
    other = pd.DataFrame({"problem_id": ["p1", "p2", "X"], "sample_index": [0, 1, 2]})
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(other, schema=SCHEMA, preserve_index=False), table_path)
    assert not is_finished(table_path, KEY)


def test_an_altered_manifest_is_not_trusted(table_path):
    manifest = json.loads(manifest_path(table_path).read_text())
    manifest["rows"] = 99  # still valid JSON, with the right content hash
    manifest_path(table_path).write_text(json.dumps(manifest))
    assert not is_finished(table_path, KEY)


def test_a_folder_with_a_changed_file_is_not_finished(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "adapter.bin").write_bytes(b"weights")
    finish_folder(folder, KEY)
    assert is_finished(folder, KEY)
    (folder / "adapter.bin").write_bytes(b"weight")
    assert not is_finished(folder, KEY)
