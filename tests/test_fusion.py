import pytest

from rag.errors import ConfigError
from rag.fusion import reciprocal_rank_fusion, score_fusion


def test_rrf_scores_are_sums_of_reciprocal_ranks() -> None:
    fused = dict(reciprocal_rank_fusion([[3, 1, 2], [1, 4]], k=60))
    assert fused[1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[3] == pytest.approx(1 / 61)
    assert fused[2] == pytest.approx(1 / 63)


def test_rrf_rewards_agreement_between_rankings() -> None:
    fused = reciprocal_rank_fusion([[3, 1, 2], [1, 4]])
    assert [item for item, _ in fused] == [1, 3, 4, 2]
    scores = [score for _, score in fused]
    assert scores == sorted(scores, reverse=True)


def test_rrf_ties_break_by_first_appearance() -> None:
    assert [item for item, _ in reciprocal_rank_fusion([[5, 6], [7, 8]])] == [5, 7, 6, 8]
    assert [item for item, _ in reciprocal_rank_fusion([[7, 8], [5, 6]])] == [7, 5, 8, 6]


def test_rrf_weights_scale_each_ranking() -> None:
    fused = reciprocal_rank_fusion([[1], [2]], k=0, weights=[1.0, 3.0])
    assert fused == [(2, 3.0), (1, 1.0)]
    assert reciprocal_rank_fusion([[1], [2]], weights=[0.0, 1.0])[0][0] == 2


def test_rrf_counts_a_repeated_id_once_at_its_best_rank() -> None:
    assert reciprocal_rank_fusion([[1, 1, 2]], k=0) == [(1, 1.0), (2, 1 / 3)]


def test_rrf_of_nothing_is_empty() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


def test_rrf_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        reciprocal_rank_fusion([[1]], weights=[1.0, 1.0])
    with pytest.raises(ConfigError, match="k=-1"):
        reciprocal_rank_fusion([[1]], k=-1)
    with pytest.raises(ConfigError, match=">= 0"):
        reciprocal_rank_fusion([[1]], weights=[-1.0])


def test_score_fusion_min_max_normalises_each_list() -> None:
    bm25 = [(1, 12.0), (2, 8.0), (3, 4.0)]
    dense = [(3, 0.9), (4, 0.5)]
    fused = dict(score_fusion([bm25, dense]))
    assert fused == pytest.approx({1: 1.0, 2: 0.5, 3: 1.0, 4: 0.0})


def test_score_fusion_weights_and_tie_break() -> None:
    bm25 = [(1, 12.0), (2, 4.0)]
    dense = [(2, 0.9), (1, 0.1)]
    assert score_fusion([bm25, dense]) == [(1, 1.0), (2, 1.0)]
    assert [i for i, _ in score_fusion([bm25, dense], weights=[1.0, 2.0])] == [2, 1]


def test_score_fusion_single_score_list_scales_to_one() -> None:
    assert score_fusion([[(5, 3.2), (6, 3.2)]]) == [(5, 1.0), (6, 1.0)]


def test_score_fusion_without_normalisation_adds_raw_scores() -> None:
    fused = score_fusion([[(1, 0.5), (2, 0.25)], [(2, 0.5)]], normalize="none")
    assert fused == [(2, 0.75), (1, 0.5)]
    with pytest.raises(ConfigError, match="normalize"):
        score_fusion([[(1, 0.5)]], normalize="l2")  # type: ignore[arg-type]


def test_score_fusion_zscore_standardises_each_list() -> None:
    bm25 = [(1, 30.0), (2, 20.0), (3, 10.0)]  # mean 20, std sqrt(200/3)
    dense = [(3, 0.9), (1, 0.7)]  # mean 0.8, std 0.1
    fused = dict(score_fusion([bm25, dense], normalize="zscore"))
    std = (200 / 3) ** 0.5
    assert fused[1] == pytest.approx(10 / std - 1.0)
    assert fused[2] == pytest.approx(0.0 + -1.0)  # missing from dense: its lowest z-score
    assert fused[3] == pytest.approx(-10 / std + 1.0)


def test_score_fusion_list_without_spread_maps_to_one_and_lower_extras_to_zero() -> None:
    assert score_fusion([[(5, 2.0), (6, 2.0)]], normalize="zscore") == [(5, 1.0), (6, 1.0)]
    fused = score_fusion([[(5, 2.0)]], normalize="zscore", extra=[{7: 0.0, 8: 3.0}])
    assert fused == [(5, 1.0), (8, 1.0), (7, 0.0)]
    assert score_fusion([[(5, 2.0)]], extra=[{7: 0.0}]) == [(5, 1.0), (7, 0.0)]


def test_score_fusion_missing_id_gets_the_lists_lowest_score() -> None:
    fused = dict(score_fusion([[(1, 4.0), (2, 2.0)], [(3, 1.0), (4, 0.0)]]))
    assert fused == pytest.approx({1: 1.0, 2: 0.0, 3: 1.0, 4: 0.0})


def test_score_fusion_extra_scores_use_the_lists_statistics() -> None:
    bm25 = [(1, 10.0), (2, 0.0)]
    dense = [(3, 1.0), (1, 0.5)]
    fused = dict(score_fusion([bm25, dense], extra=[{3: 5.0}, {2: 0.75}]))
    assert fused == pytest.approx({1: 1.0, 2: 0.5, 3: 1.5})
    # extra scores never move the statistics: a huge extra score normalises past 1
    assert dict(score_fusion([[(1, 1.0), (2, 0.0)]], extra=[{3: 3.0}]))[3] == pytest.approx(3.0)


def test_score_fusion_extra_is_ignored_for_ids_already_in_the_list() -> None:
    assert score_fusion([[(1, 1.0), (2, 0.0)]], extra=[{1: -5.0}]) == [(1, 1.0), (2, 0.0)]
    with pytest.raises(ValueError, match="1 extra score maps for 2"):
        score_fusion([[(1, 1.0)], [(1, 1.0)]], extra=[{}])
