# needtoknow's default policy: who sees which tickets, and how much of the customer behind
# each ticket they see. See README.md ("Policies") for the admin workflow.
#
# The host asks these questions:
#   role(name, label)       the role vocabulary, with how a hand-off names the role;
#   topic(name)             the topic vocabulary;
#   channel(name)           the channels tickets arrive through (openTicket refuses others);
#   ticket_scope(agent, s)  which kinds of tickets an agent may see, where s is one of
#                           "assigned" (assigned to them), "queue" (unassigned, topic in
#                           their queues) or "team" (any ticket of their team);
#   field_access(agent, ticket, class, level, reveal)
#                           for a ticket the agent may see: the access level ("PLAIN",
#                           "MASKED", "HIDDEN") and reveal option ("NONE", "WITH_REASON",
#                           "WITH_APPROVAL") of a data class. No matching rule means HIDDEN
#                           with reveal NONE; if several rules match, the most permissive
#                           level wins. A rule may name a field instead of a class (e.g.
#                           "dateOfBirth"): its answer replaces the class's for that field.
#   audit_scope(agent, s)   which audit events an agent may read: "own" (events they acted
#                           in), "team" (events about tickets of their team) or "all"
#                           (every event, including those naming no ticket). None: the
#                           audit trail is refused.
#   reveal_seconds(agent, ticket, class, seconds)
#                           how long a reveal grant lasts (default 900, capped by config);
#   allow(agent, action, resource)
#                           other permissions: ("read", "access_report"), ("lookup",
#                           "customer_by_contact"), ("export" | "erase", "customer_data"),
#                           ("upsert", "customer"), ("manage", "agents"), and on a ticket
#                           "approve_reveal", "revoke_reveal" (others' grants),
#                           "set_status", "verify_identity", "open" (a new ticket: open,
#                           unassigned), "append_message", "attach_document", "reply",
#                           "claim", "assign", "hand_off". `policy check` refuses any
#                           other pair: the service never asks about it.
#
# Agent attributes:  role, team, queues (list of topics).
# Ticket attributes: topic, status, assigned_to_me, unassigned, in_my_team (booleans
#                    computed for the asking agent).

# ---- Vocabulary -------------------------------------------------------------------------

role("frontline", "a frontline agent");
role("billing", "a billing specialist");
role("identity", "an identity specialist");
role("supervisor", "a supervisor");
role("auditor", "an auditor");
role("admin", "an administrator");
role("intake", "a channel integration");

topic("account_access");
topic("billing");
topic("shipping");
topic("technical");
topic("identity_verification");
topic("privacy_request");

channel("email");
channel("chat");
channel("web");
channel("phone");

# ---- Which tickets an agent may see -------------------------------------------------------

# Everyone but auditors and integrations works the tickets assigned to them and picks up
# unassigned tickets of their queues; auditors see no tickets, only the audit trail, and
# integrations (intake) write tickets but read none back.
ticket_scope(agent: Agent, "assigned") if works_tickets(agent);
ticket_scope(agent: Agent, "queue") if works_tickets(agent);
ticket_scope(agent: Agent, "team") if agent.role = "supervisor";

works_tickets(agent: Agent) if not agent.role in ["auditor", "intake"];

# ---- How much of the customer an agent sees ---------------------------------------------

# Whoever may see a ticket sees the account and the customer's other tickets. (The host
# asks only about tickets the agent may see; agents with no scope, auditors, see nothing.)
field_access(agent: Agent, _ticket: Ticket, "account", "PLAIN", "NONE") if
    ticket_scope(agent, _);
field_access(agent: Agent, _ticket: Ticket, "ticket_history", "PLAIN", "NONE") if
    ticket_scope(agent, _);

# Everything else is for the assigned agent, by role and topic ...
field_access(agent: Agent, ticket: Ticket, class: String, level: String, reveal: String) if
    ticket.assigned_to_me and
    assignee_access(agent.role, ticket.topic, class, level, reveal);

# ... and for supervisors, on any ticket of their team.
field_access(agent: Agent, ticket: Ticket, class: String, level: String, reveal: String) if
    agent.role = "supervisor" and
    ticket.in_my_team and
    supervisor_access(class, level, reveal);

# The assignee's view, one line per role, topic and class. Classes not listed are HIDDEN.
assignee_access("frontline", topic, "name", "PLAIN", "NONE") if frontline_topic(topic);
assignee_access("frontline", topic, "contact", "MASKED", "WITH_REASON") if frontline_topic(topic);
assignee_access("frontline", "shipping", "address", "PLAIN", "NONE");

assignee_access("billing", "billing", "name", "PLAIN", "NONE");
assignee_access("billing", "billing", "contact", "MASKED", "WITH_REASON");
assignee_access("billing", "billing", "address", "MASKED", "WITH_REASON");
assignee_access("billing", "billing", "billing", "PLAIN", "NONE");

assignee_access("identity", "identity_verification", "name", "PLAIN", "NONE");
assignee_access("identity", "identity_verification", "contact", "PLAIN", "NONE");
assignee_access("identity", "identity_verification", "address", "PLAIN", "NONE");
assignee_access("identity", "identity_verification", "identity", "PLAIN", "NONE");

frontline_topic(topic) if topic in ["account_access", "technical", "shipping"];

# The supervisor's view of their team's tickets, whatever the topic.
supervisor_access("name", "PLAIN", "NONE");
supervisor_access("contact", "MASKED", "WITH_REASON");
supervisor_access("address", "MASKED", "WITH_REASON");
supervisor_access("identity", "HIDDEN", "WITH_APPROVAL");
supervisor_access("billing", "MASKED", "WITH_APPROVAL");
supervisor_access("chat_history", "MASKED", "WITH_APPROVAL");

# ---- Reveals ---------------------------------------------------------------------------------

# How long a reveal grant lasts, in seconds (the service caps it by configuration; 900 when
# no rule answers).
reveal_seconds(_agent: Agent, _ticket: Ticket, _class: String, 900);

# Who decides reveal requests that need approval, and who may revoke others' grants.
allow(agent: Agent, "approve_reveal", ticket: Ticket) if
    agent.role = "supervisor" and ticket.in_my_team;
allow(agent: Agent, "revoke_reveal", ticket: Ticket) if
    agent.role = "supervisor" and ticket.in_my_team;

# ---- Other permissions ---------------------------------------------------------------------

# Who may check what a caller says (date of birth, postcode, card's last 4) against the
# record on a ticket: match / no match only, never the values.
allow(_agent: Agent, "verify_identity", ticket: Ticket) if ticket.assigned_to_me;
allow(agent: Agent, "verify_identity", ticket: Ticket) if
    agent.role = "supervisor" and ticket.in_my_team;

# Who writes what arrives from the channels: integrations' service accounts (role intake)
# create customers, open tickets of their team on every topic, and add the customer's
# messages and documents. They read back nothing protected (no ticket_scope above).
allow(agent: Agent, "upsert", "customer") if agent.role = "intake";
allow(agent: Agent, "open", ticket: Ticket) if agent.role = "intake" and ticket.in_my_team;
allow(agent: Agent, "append_message", ticket: Ticket) if
    agent.role = "intake" and ticket.in_my_team;
allow(agent: Agent, "attach_document", ticket: Ticket) if
    agent.role = "intake" and ticket.in_my_team;

# Who answers the customer: the assignee, and supervisors on their team's tickets.
allow(_agent: Agent, "reply", ticket: Ticket) if ticket.assigned_to_me;
allow(agent: Agent, "reply", ticket: Ticket) if
    agent.role = "supervisor" and ticket.in_my_team;

# Who takes an unassigned ticket of their queues, who assigns tickets, and who hands a
# ticket off to the role that can help (the assignee, or a supervisor of the team).
allow(agent: Agent, "claim", ticket: Ticket) if
    works_tickets(agent) and ticket.unassigned and ticket.topic in agent.queues;
allow(agent: Agent, "assign", ticket: Ticket) if
    agent.role = "supervisor" and ticket.in_my_team;
allow(_agent: Agent, "hand_off", ticket: Ticket) if ticket.assigned_to_me;
allow(agent: Agent, "hand_off", ticket: Ticket) if
    agent.role = "supervisor" and ticket.in_my_team;

# Who may resolve or close a ticket (which revokes every grant on it).
allow(_agent: Agent, "set_status", ticket: Ticket) if ticket.assigned_to_me;
allow(agent: Agent, "set_status", ticket: Ticket) if
    agent.role = "supervisor" and ticket.in_my_team;

# Who may read which part of the audit trail: supervisors the events about their team's
# tickets, auditors every event. Nobody reads another team's reasons.
audit_scope(agent: Agent, "team") if agent.role = "supervisor";
audit_scope(agent: Agent, "all") if agent.role = "auditor";

# Who may read per-customer access reports (the privacy officer).
allow(agent: Agent, "read", "access_report") if agent.role in ["admin", "auditor"];

# Who may link an inbound email or phone number to the customer's tickets (they see only
# tickets they may see anyway).
allow(agent: Agent, "lookup", "customer_by_contact") if
    agent.role in ["frontline", "billing", "identity", "supervisor"];

# Who answers data-subject requests: export everything held on a customer, or erase them.
allow(agent: Agent, "export", "customer_data") if agent.role = "admin";
allow(agent: Agent, "erase", "customer_data") if agent.role = "admin";

# Who manages agents and service accounts over the API (create, change, disable, issue
# tokens).
allow(agent: Agent, "manage", "agents") if agent.role = "admin";
