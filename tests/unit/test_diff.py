from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vmray_operator.reconcile.diff import merge_patch

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12,
)
documents = st.dictionaries(st.text(max_size=3), json_values.filter(lambda v: v is not None), max_size=4)


def apply_merge_patch(target: object, patch: object) -> object:
    """RFC 7386, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def test_equal_documents_need_no_patch() -> None:
    assert merge_patch({"a": {"b": 1}}, {"a": {"b": 1}}) == {}


def test_removed_keys_become_null_and_nested_changes_stay_small() -> None:
    old = {"current_workers": {"w1": {"ip": "1"}, "w2": {"ip": "2"}}, "state": "running"}
    new = {"current_workers": {"w1": {"ip": "1"}}, "state": "running"}
    assert merge_patch(old, new) == {"current_workers": {"w2": None}}


@given(documents, documents)
def test_applying_the_patch_gives_the_new_document(old: dict[str, object], new: dict[str, object]) -> None:
    def no_nulls(value: object) -> bool:
        if isinstance(value, dict):
            return all(v is not None and no_nulls(v) for v in value.values())
        if isinstance(value, list):
            return all(no_nulls(v) for v in value)
        return True

    if not no_nulls(new):  # a merge patch cannot express null values inside objects
        return
    assert apply_merge_patch(old, merge_patch(old, new)) == new
