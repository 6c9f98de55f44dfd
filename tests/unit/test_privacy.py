import pandas as pd
import pytest

from tasks.privacy import apply_pii_policy, keyed_hash

KEY = b"k" * 32


def test_keyed_hash_depends_on_key_and_hides_value():
    digest = keyed_hash("N14228", KEY)
    assert digest.startswith("h_") and "N14228" not in digest
    assert digest == keyed_hash("N14228", KEY)
    assert digest != keyed_hash("N14228", b"other-key-of-32-bytes-----------")


def test_apply_pii_policy_hashes_drops_and_keeps_nulls():
    frame = pd.DataFrame({"tag": ["A1", None, "A1"], "gone": ["x", "y", "z"], "ok": [1, 2, 3]})
    out = apply_pii_policy(frame, {"tag": "hash", "gone": "drop", "ok": "keep"}, KEY)
    assert list(out.columns) == ["tag", "ok"]
    assert out["tag"].iloc[0] == out["tag"].iloc[2] == keyed_hash("A1", KEY)
    assert pd.isna(out["tag"].iloc[1])
    assert frame["tag"].iloc[0] == "A1"  # input not mutated


@pytest.mark.parametrize("key", [None, b"short"])
def test_apply_pii_policy_refuses_to_hash_without_a_proper_key(key):
    with pytest.raises(ValueError, match="PII column 'tag'"):
        apply_pii_policy(pd.DataFrame({"tag": ["A1"]}), {"tag": "hash"}, key)
