"""Customers (docs/reference/functions.md): one actor per customer with its memberships, orders and
activity timeline; uniqueness claims for email, phone and user id; the directory projection
behind lists, search and statistics; and the reactions other modules call on a customer.

`CUSTOMERS` declares the aggregates, the projection and every client-callable function.
"""

from domain.customers.aggregate import CUSTOMER
from domain.customers.claims import CLAIM, ClaimState, claim_id, user_claim_id
from domain.customers.events import (
    CLAIM_EVENTS,
    CUSTOMER_EVENTS,
    PERSONAL_FIELDS,
    CustomerClaimReleased,
    CustomerClaimTaken,
    CustomerClvCalculated,
    CustomerCreated,
    CustomerOrderRecorded,
    CustomerStateChanged,
    CustomerTicketPurchaseRecorded,
    CustomerUpdated,
    MembershipEnrolled,
    MembershipPointsAdded,
)
from domain.customers.invariants import check_invariants
from domain.customers.module import CUSTOMERS, MUTATIONS, QUERIES
from domain.customers.profile import CUSTOMER_TYPES, LIFECYCLES, Profile
from domain.customers.projections import CUSTOMER_DIRECTORY, CustomerDirectory, OrgDirectory
from domain.customers.reactions import OrderFacts, record_order, record_ticket_purchase
from domain.customers.state import (
    SOFT_STATE_TRANSITIONS,
    ActivityEntry,
    CustomerState,
    Figures,
    Membership,
    OrderRecord,
    evolve,
    figures_of,
)

__all__ = [
    "CLAIM",
    "CLAIM_EVENTS",
    "CUSTOMER",
    "CUSTOMERS",
    "CUSTOMER_DIRECTORY",
    "CUSTOMER_EVENTS",
    "CUSTOMER_TYPES",
    "LIFECYCLES",
    "MUTATIONS",
    "PERSONAL_FIELDS",
    "QUERIES",
    "SOFT_STATE_TRANSITIONS",
    "ActivityEntry",
    "ClaimState",
    "CustomerClaimReleased",
    "CustomerClaimTaken",
    "CustomerClvCalculated",
    "CustomerCreated",
    "CustomerDirectory",
    "CustomerOrderRecorded",
    "CustomerState",
    "CustomerStateChanged",
    "CustomerTicketPurchaseRecorded",
    "CustomerUpdated",
    "Figures",
    "Membership",
    "MembershipEnrolled",
    "MembershipPointsAdded",
    "OrderFacts",
    "OrderRecord",
    "OrgDirectory",
    "Profile",
    "check_invariants",
    "claim_id",
    "evolve",
    "figures_of",
    "record_order",
    "record_ticket_purchase",
    "user_claim_id",
]
