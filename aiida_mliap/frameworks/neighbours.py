"""Neighbour lists for a whole batch on the model's device, in torch: the graph of a step is built where it runs.

Every pair of atoms of one structure is tried against every periodic image within reach of the cutoff (the image
count per cell vector follows from the cell's heights), all structures at once: O(sum n_b^2 * images_b) candidates,
which suits the small cells of a crystal benchmark (<= a few hundred atoms) and a GPU. The result follows ASE's
``neighbor_list('ijS')`` convention without self-pairs in the home cell: D = r_j - r_i + S @ cell, |D| < cutoff.
"""

from __future__ import annotations

import torch

from ..contract.system import System, batch_of, ptr_of

# Candidates per chunk: bounds the transient memory (about 100 bytes per candidate) on large batches.
CHUNK = 4_000_000


def neighbour_pairs(system: System, cutoff: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(i, j, S): atom indices into the concatenated system and integer shifts (E, 3) of all pairs within cutoff."""
    device, cells = system.positions.device, system.cells
    counts, ptr = system.counts, system.ptr
    reach = _images(cells, system.pbc, cutoff)  # (B, 3)
    top = reach.amax(dim=0).tolist() if len(reach) else [0, 0, 0]
    axes = [torch.arange(-r, r + 1, device=device) for r in top]
    grid = torch.cartesian_prod(*axes).reshape(-1, 3)  # (M, 3)
    valid = (grid.abs()[None, :, :] <= reach[:, None, :]).all(dim=2)  # (B, M)
    structure, image = valid.nonzero(as_tuple=True)
    per_image = counts[structure] ** 2
    bounds = torch.cumsum(per_image, 0)
    atom_structure = system.batch
    found, start = [], 0
    while start < len(structure):
        stop = int(torch.searchsorted(bounds, bounds[start] - per_image[start] + CHUNK, right=True))
        stop = max(stop, start + 1)
        i, j, s = _candidates(structure[start:stop], grid[image[start:stop]], per_image[start:stop], ptr, counts)
        offset = torch.einsum('ek,ekl->el', s.to(cells.dtype), cells[atom_structure[i]])
        vectors = system.positions[j] - system.positions[i] + offset
        keep = (vectors.square().sum(dim=1) < cutoff * cutoff) & ~((i == j) & (s == 0).all(dim=1))
        found.append((i[keep], j[keep], s[keep]))
        start = stop
    if not found:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, torch.zeros((0, 3), dtype=torch.long, device=device)
    i, j, s = (torch.cat(parts) for parts in zip(*found, strict=True))
    order = torch.argsort(i, stable=True)  # grouped by the first atom, as ASE's: message passing reads them in order
    return i[order], j[order], s[order]


def _images(cells: torch.Tensor, pbc: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Periodic images needed along each cell vector: ceil(cutoff / height), 0 along non-periodic directions."""
    volume = torch.linalg.det(cells).abs()
    cross = torch.linalg.cross(cells[:, [1, 2, 0]], cells[:, [2, 0, 1]], dim=2)  # a2 x a3, a3 x a1, a1 x a2
    heights = volume[:, None] / torch.linalg.vector_norm(cross, dim=2).clamp(min=1e-12)
    reach = torch.ceil(cutoff / heights.clamp(min=1e-12)).long()
    return torch.where(pbc, reach, torch.zeros_like(reach))


def _candidates(structure, shift, per_image, ptr, counts):
    """All (i, j) of each listed (structure, image): the candidates of one chunk."""
    owner = batch_of(per_image)  # the (structure, image) entry each candidate belongs to
    local = torch.arange(len(owner), device=per_image.device) - ptr_of(per_image)[owner]
    n = counts[structure][owner]
    first = ptr[structure][owner]
    return first + local // n, first + local % n, shift[owner]
