-- Budget holds: before its model calls, a call reserves the most tokens it
-- can use against its tenant's day and month budgets, in one transaction
-- that locks the two budget rows, so concurrent calls on any number of
-- instances never reserve past a budget. The call's usage rows settle it:
-- the hold is deleted and the tokens used are charged. A hold whose call
-- never settled (its instance died) stops counting at expires_at_ms and is
-- deleted by the next reservation of its tenant.
CREATE TABLE soapgate_budget_holds (
    id            VARCHAR(64)  NOT NULL PRIMARY KEY,
    tenant        VARCHAR(255) NOT NULL,
    day           VARCHAR(16)  NOT NULL,
    month         VARCHAR(16)  NOT NULL,
    tokens        BIGINT       NOT NULL,
    expires_at_ms BIGINT       NOT NULL,
    INDEX soapgate_budget_holds_tenant (tenant, expires_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
