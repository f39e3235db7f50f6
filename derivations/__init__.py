"""SymPy re-derivations of Aitchison's "Bayesian filtering unifies adaptive and non-adaptive neural network
optimization methods": every numbered equation of §3 and Appendices A-D and the update lines of Algorithms 1-2.

Modules: :mod:`.model` (Eqs. 5-15, 32-34), :mod:`.kalman` (16a-19b, 35-42), :mod:`.fixed_point` (20-27, 43-49 and the
exact fixed point), :mod:`.fading_memory` (28-31), :mod:`.algorithms` (Alg. 1, Alg. 2 and symbolic rule steps).
:func:`all_records` returns the records in paper order; a record's status is computed from :class:`Comparison` objects
(:meth:`Record.from_comparison`) unless the paper defines or assumes the quantity (:meth:`Record.given`). This
package imports neither ``filtering``, torch nor matplotlib.
"""

from .records import Comparison, Extra, Record, all_extras, all_records, collect

__all__ = ["Comparison", "Extra", "Record", "all_extras", "all_records", "collect"]
