"""``query_frame`` gives what QueryBuilder gives, on every storage (on PostgreSQL it reads through COPY and CSV)."""

import pandas as pd
import pytest
from aiida import orm

from aiida_mliap.provenance.frames import query_frame

pytestmark = pytest.mark.storage

AWKWARD = [
    {'text': 'plain', 'number': 1, 'real': 0.25, 'flag': True, 'maybe': None, 'mapping': {'mp-1': 1.0}},
    {'text': 'with "quotes", commas\nand a newline', 'number': 2, 'real': -1e-300, 'flag': False, 'maybe': 3},
    {'text': 'back\\slash, ünïcode ✓', 'number': 3, 'real': 12345.678, 'flag': None, 'mapping': [1, 'a', None]},
    {'text': '', 'number': 4, 'real': None, 'maybe': 'null', 'mapping': {}},
    {'text': 'NaN', 'number': 5, 'real': 2.0, 'flag': True, 'maybe': 'true'},
]
KEYS = ('text', 'number', 'real', 'flag', 'maybe', 'mapping', 'absent')


def test_query_frame_equals_iterall():
    group = orm.Group(label='query-frame-awkward').store()
    nodes = [orm.Dict(attributes).store() for attributes in AWKWARD]
    group.add_nodes(nodes)
    query = orm.QueryBuilder().append(orm.Group, filters={'id': group.pk}, tag='group', project='label')
    query.append(orm.Dict, with_group='group', project=['id', 'ctime', *(f'attributes.{key}' for key in KEYS)])
    query.order_by({orm.Dict: 'id'})
    columns = ['group', 'pk', 'ctime', *KEYS]

    frame = query_frame(query, columns, attributes=KEYS, times=['ctime'])
    expected = pd.DataFrame(list(query.iterall()), columns=columns)
    expected['ctime'] = pd.to_datetime(expected['ctime'], utc=True)
    pd.testing.assert_frame_equal(frame, expected)
    assert frame['text'].tolist() == [attributes['text'] for attributes in AWKWARD]
    assert frame['maybe'].tolist() == [None, 3, None, 'null', 'true']  # a JSON null is None, the string 'null' not
    assert frame['mapping'].tolist() == [{'mp-1': 1.0}, None, [1, 'a', None], {}, None]
    assert frame['absent'].tolist() == [None] * len(AWKWARD)

    empty = orm.QueryBuilder().append(orm.Dict, filters={'id': -1}, project=['id', 'attributes.text'])
    assert query_frame(empty, ['pk', 'text'], attributes=['text']).empty
