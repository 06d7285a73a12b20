"""The transaction lifecycle: every transaction the platform sends goes through ``TransactionManager``.

    intent persisted (pending) → nonce bound → signed and persisted (hash known) → sent → mined
        → confirmed after N blocks, or reverted / failed (rejected by the node) / dropped

* ``submit(intent_key, call)`` is idempotent: the key stands for one transaction. A second submit with the same
  call returns the first one's state; with another call it raises IntentConflict.
* Nothing is signed before its intent is persisted, and nothing is sent before the signed bytes are persisted,
  so a restart at any point resumes from the store: it re-broadcasts the same signed bytes (same hash) and never
  signs a second transaction with another nonce for one intent. With the SQL allocator a new intent's nonce is bound
  and its signed attempt written in one database transaction (``SqlNonceAllocator.allocate_signed``).
* Fees are EIP-1559, from ``eth_feeHistory`` within the chain's ``FeePolicy``. A transaction not mined
  ``stuck_after`` seconds after a node first accepted it is replaced at the same nonce with both fees raised by
  ≥ 12.5 %; whichever of the attempts is mined settles the intent. Rebroadcasts (every ``rebroadcast_after``) do not
  restart that clock: anvil can keep a transaction in its queue, never mined, while answering "already imported".
  A bump the node refuses (the account short of funds for it) is recorded rejected and tried again after another
  ``stuck_after``, as are all bumps while the base fee is above the cap; one intent's failed bump stops no other's.
  A refused rebroadcast of an attempt a node once accepted never fails the intent nor releases its nonce (a pooled
  transaction meets "max fee per gas less than block base fee" in a fee spike): it is followed on and bumped. Nor
  does a refusal of an attempt the node still holds (asked by hash first: its acceptance may never have been stored).
  A transaction above the node's pending count waits behind a missing nonce and is not bumped. A nonce given back
  (a refusal; a resumed intent's bound nonce whose gas estimate fails) below a later nonce handed out (to this
  manager or another) is filled at once by a zero-value transfer to the account itself (``_Sending._fill_gap``),
  and at start-up when an earlier process released it and stopped before filling it.
* Mined transactions are found per block (``eth_getBlockReceipts``), not by polling one receipt per transaction,
  and confirmed once the block is N deep and still canonical (a reorg sends them back to "sent"). Blocks mined while
  the manager follows nothing are not read: the first broadcast after such a spell moves the scan to the head.
* Confirmation is awaitable: ``await manager.wait(intent_key)``.
* Each open intent is owned by one manager (``owner``: one per instance, unique across processes and machines)
  under a lease on its row that the owner renews for all its intents in one statement every ``claim_after / 3``
  seconds (a task beside the watcher). A manager follows only the intents it owns: it never re-broadcasts or
  fee-bumps a live owner's intent. An intent whose owner stopped renewing (its process died) is claimed
  (``claim_stale``, in any open state) by another manager of the same account once ``claim_after`` has passed,
  which then resumes it from the store: the same signed bytes, the same nonce. A manager that finds one of its
  intents taken over (it stalled past its lease) lets it go; its writes of new attempts are fenced by the owner, and
  the SQL allocator binds a nonce only while its manager holds the intent's unexpired lease (one statement), so a
  manager that stalled while allocating consumes no nonce for an intent another follows now. A claimed intent that
  was already mined is not broadcast again; its receipt is read to confirm it or report it reverted.
* A freshly allocated nonce the node calls used ("nonce too low") while the node knows none of our transactions
  under it means the key sent a transaction the platform did not (it was used outside the platform): the allocator
  is resynced from the chain's pending count and the transaction signed again with a new nonce, once; if that
  fails too the intent ends dropped. (The node knowing ours means the watcher broadcast it first and it was mined.)
  An intent is dropped only when none of its attempts has a receipt and the account's nonce count ``confirmations``
  blocks deep is past its nonce; "nonce too low" heard before a reorg took our block back is then forgotten.

Layout: private modules behind these public names, each layer a base class of the next — ``_values`` (Call,
Receipt, Submission), ``_settings`` (LifecycleSettings, owner ids), ``_tracked`` (an open intent in memory, the
node's answers), ``_broadcasts`` (the signed attempts ready at one moment as one JSON-RPC batch request), ``_core``
(state, RPC, fees), ``_sending``, ``_owning`` (leases), ``_watching``, ``_manager``.
"""

from chain.transactions._manager import BARRED_PAYLOAD, TransactionManager
from chain.transactions._settings import LifecycleSettings, default_owner
from chain.transactions._values import Call, Receipt, Submission

__all__ = [
    "BARRED_PAYLOAD",
    "Call",
    "LifecycleSettings",
    "Receipt",
    "Submission",
    "TransactionManager",
    "default_owner",
]
