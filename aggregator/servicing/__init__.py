"""Servicing a loan after it opens: days past due and their buckets (``delinquency``), the default job
(``defaults``), the liquidation keeper (``keeper``) on the collateral rules of the CollateralManager
(``health``) and the prices of its feeds (``prices``)."""
