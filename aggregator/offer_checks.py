"""What an answering provider's offer must say before it is disclosed, ranked and signed: that it is the provider's
own offer for what was asked. An adapter plugin is third-party code, and the quote signer signs what it returns: an
offer under another provider's id was ranked, signed and attributed to that provider (its loan funded by a lender that
never offered it), and one for ten times the principal asked was signed for that amount. Such an offer is dropped,
with the reason named in its provider's outcome (``aggregator.fanout``)."""

from __future__ import annotations

from collections.abc import Sequence

from providers.models import ProviderKind, ProviderOffer, QuoteRequest, RepaymentShape

#: the installments of one provider's answer disclosed at most (its offers' together, in its order): each is a
#: payment computed and checked (~0.1 ms), and one lender answering 20 offers of 600 installments cost 1.1 s of work
#: per credit request; 2,400 is twenty offers of ten years' monthly installments
MAX_INSTALLMENTS_PER_ANSWER = 2_400


def offer_mismatch(
    offer: ProviderOffer, provider_id: str, lending_pool: tuple[str, str] | None, query: QuoteRequest
) -> str | None:
    """Why ``offer`` is not ``provider_id``'s own offer for ``query``, or None when it is: it names that provider,
    the asset, principal and term asked (an amortizing offer's term becomes its schedule's only after this: its
    schedule is held to the term asked in disclosure, ``aggregator.offer_terms.schedule_past_term``), and a pool
    offer names the provider's own pool (``lending_pool``: chain, address; ``ProviderAdapter.lending_pool``) —
    a lender's offer is never a pool offer, nor a pool's a lender's."""
    if offer.provider_id != provider_id:
        return f"the offer names provider {offer.provider_id!r}, not {provider_id!r}"
    if offer.asset != query.asset:
        return f"the offer lends {offer.asset}, not the {query.asset} asked"
    if offer.principal != query.principal:
        return f"the offer's principal {offer.principal} is not the {query.principal} asked (base units)"
    if offer.term_days != query.term_days:
        return f"the offer's term of {offer.term_days} days is not the {query.term_days} asked"
    if offer.kind is ProviderKind.POOL:
        if lending_pool is None:
            return "a pool offer from a provider that is not a registered pool"
        chain, address = lending_pool
        if offer.chain != chain or (offer.pool_address or "").lower() != address.lower():
            return f"the pool offer names pool {offer.pool_address} on {offer.chain}, not its own {address} on {chain}"
    elif lending_pool is not None:
        return "a lender's offer from a pool"
    return None


def installments_of(offer: ProviderOffer) -> int:
    """The payments disclosing ``offer`` computes: its installments, or one."""
    return max(offer.installments, 1) if offer.repayment is RepaymentShape.INSTALLMENTS else 1


def own_offers(
    offers: Sequence[ProviderOffer], provider_id: str, lending_pool: tuple[str, str] | None, query: QuoteRequest
) -> tuple[list[ProviderOffer], list[str]]:
    """``offers`` split into the provider's own offers for ``query`` and the reasons the others are dropped (each
    reason naming the offer's reference); past ``MAX_INSTALLMENTS_PER_ANSWER`` installments, the later offers are
    dropped too."""
    kept, dropped, installments = [], [], 0
    for offer in offers:
        reason = offer_mismatch(offer, provider_id, lending_pool, query)
        if reason is None and installments + installments_of(offer) > MAX_INSTALLMENTS_PER_ANSWER:
            reason = f"past the {MAX_INSTALLMENTS_PER_ANSWER} installments disclosed of one answer"
        if reason is None:
            kept.append(offer)
            installments += installments_of(offer)
        else:
            dropped.append(f"offer {offer.provider_ref[:64]!r} dropped: {reason}")
    return kept, dropped
