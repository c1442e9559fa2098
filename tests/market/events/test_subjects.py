"""Subjects and patterns: what a pattern names, and the index that finds its followers."""

from hypothesis import given
from hypothesis import strategies as st

from market.events.subjects import SubjectIndex, subject_matches

TOKENS = ["market", "1", "2", "booth", "visitor", "ops", "7"]
subjects = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map(".".join)
patterns = st.lists(st.sampled_from([*TOKENS, "*"]), min_size=1, max_size=6).flatmap(
    lambda tokens: st.sampled_from([".".join(tokens), ".".join([*tokens, ">"])])
)


def test_wildcards_name_one_token_or_the_rest():
    assert subject_matches("market.1.booth.*.visitor.7", "market.1.booth.3.visitor.7")
    assert not subject_matches("market.1.booth.*.visitor.7", "market.1.booth.3.visitor.8")
    assert subject_matches("market.1.>", "market.1.ops.summary")
    assert not subject_matches("market.1.>", "market.1")  # '>' needs one token at least
    assert not subject_matches("market.*", "market.1.ops")


@given(st.lists(patterns, max_size=12), subjects, st.randoms())
def test_the_index_finds_exactly_the_followers_whose_patterns_match(chosen, subject, rnd):
    index = SubjectIndex()
    for i, pattern in enumerate(chosen):
        index.add(pattern, i)
    removed = {i for i in range(len(chosen)) if rnd.random() < 0.3}
    for i in removed:
        index.discard(chosen[i], i)
    expected = {i for i, p in enumerate(chosen) if i not in removed and subject_matches(p, subject)}
    assert index.match(subject) == expected


class IgnoresStar(SubjectIndex):
    """A planted bug: a walk that follows the subject's literal tokens only, never '*'."""

    def match(self, subject):
        found, node = set(), self._root
        for token in subject.split("."):
            found |= node.rest
            node = node.children.get(token)
            if node is None:
                return found
        return found | node.values


def test_control_the_property_check_catches_an_index_that_ignores_star():
    index = IgnoresStar()
    index.add("market.1.booth.*.assets", "star")
    subject = "market.1.booth.4.assets"
    assert subject_matches("market.1.booth.*.assets", subject)
    assert index.match(subject) != {"star"}  # the comparison above would fail on it
