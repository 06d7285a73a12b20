"""Governance of our contract set: the role map and governed functions (``catalog``), and proposing, signing,
submitting, executing, cancelling and pausing on one chain or all (``service``). Front ends: ``creditmesh admin``
(``api/cli/admin.py``) and ``ape run governance`` (``scripts/governance.py``)."""
