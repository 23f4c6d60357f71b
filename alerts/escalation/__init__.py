"""Escalation: who is called, how, and what their answers do.

- :mod:`.policy` — the pure policy engine (steps, waits, repeats, what a keypress means);
- :mod:`.runner` — the chain on the database: claim due alarms, start steps, create and send attempts,
  the auditor that re-arms stalled chains;
- :mod:`.targets` — the people behind a policy target, and the parameters of their messages;
- :mod:`.replies` — the provider's events: call and SMS statuses, keypresses, SMS replies;
- :mod:`.responses` — the centre's one-click responses and the family's outcome SMS;
- :mod:`.templates` — message templates in every language; :mod:`.links` — signed phone-page links;
- :mod:`.notifiers` — the providers (console, Twilio) behind one narrow interface.
"""
