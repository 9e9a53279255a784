import numpy as np
import pytest

from ravst.types import Answer, CoordSpace, Prediction, QAItem, Span, Task, Track


def test_span_validation():
    assert Span(1, 2).as_list() == [1.0, 2.0]
    with pytest.raises(ValueError, match="before start_s"):
        Span(3.0, 2.0)
    with pytest.raises(ValueError, match="finite"):
        Span(float("nan"), 2.0)


def test_track_shapes_and_readonly():
    t = Track("dog", [1.0, 1.0, 2.0], [[0, 0, 5, 5], [1, 1, 2, 2], [0, 0, 0, 0]])
    assert len(t) == 3
    assert t.nonempty.tolist() == [True, True, False]
    with pytest.raises(ValueError):
        t.xyxy[0, 0] = 3.0
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        Track("dog", [1.0], [[0, 0, 1]])
    with pytest.raises(ValueError, match="1 timestamps but 2 boxes"):
        Track("dog", [1.0], [[0, 0, 1, 1], [0, 0, 1, 1]])
    assert Track("x") == Track("x", [], [])
    assert t != Track("dog", [1.0], [[0, 0, 5, 5]])


def test_task_official_keys_round_trip():
    for task in Task:
        assert Task.from_official_key(task.official_key) is task
    with pytest.raises(ValueError, match="unknown official task key"):
        Task.from_official_key("AV Something")


def test_qaitem_kind_and_id():
    qa = QAItem(
        qa_id=QAItem.make_id("v", 0, "spatial", 1), video="v", duration_s=10.0, event_index=0,
        event_num=1, task=Task.SPATIAL, k=1, question="q", answer=Answer(("a",)), sounding=False,
    )
    assert qa.qa_id == "v/0/spatial/1"
    assert qa.kind == "spatial-silent"
    with pytest.raises(ValueError, match="empty video"):
        QAItem(qa_id="x", video="", duration_s=1, event_index=0, event_num=1, task="temporal", k=0,
               question="q", answer=Answer())


def test_prediction_coord_space_needs_input_size():
    with pytest.raises(ValueError, match="needs input_wh"):
        Prediction("a", "text", coord_space="input")
    p = Prediction("a", "text", coord_space=CoordSpace.INPUT, input_wh=(640.0, 360))
    assert p.input_wh == (640, 360)
    assert np.isclose(Answer(spans=(Span(0, 1),)).span.duration_s, 1.0)
