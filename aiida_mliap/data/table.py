"""One batch of one model and task as a single node: the compact input of the hull and symmetry calcfunctions."""

from .identity import IdentityDict


class MliapBatchTable(IdentityDict):
    """``task``, ``parameters`` (the runner's), ``model_sha256`` and ``rows``: per structure label the reference
    entry's attributes and the model's final result (or None), exactly as the nodes it was made from hold them.

    Made by ``tabulate_batch`` from the reference and result nodes themselves, so that a calculation reading a
    hundred thousand results has a few thousand inputs, and each value still traces back to its nodes.
    """

    @property
    def task(self) -> str:
        return self.base.attributes.get('task')

    @property
    def rows(self) -> dict:
        return self.base.attributes.get('rows')
