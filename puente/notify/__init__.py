"""The notification outbox: messages queued inside a transaction, delivered after it.

How a domain notifies someone (break-the-glass notices, appointment reminders)::

    from puente.notify import service as notify

    notify.queue(
        session,
        idempotency_key=f"btg-notice:{grant.id}",  # one logical message, one key
        kind="consent.btg_notice",
        recipient=address,  # validated; InvalidRecipient (422) if it cannot receive mail
        locale=patient_locale,  # "es-MX", "es", "en_US"... else PUENTE_DEFAULT_LOCALE
        subject_key=N_("consent.btg_notice.subject"),  # catalog keys, both languages
        body_key=N_("consent.btg_notice.body"),
        params={"hospital": hospital_name, "until": until_text},  # {name} placeholders
    )

The subject and body are rendered now, in the recipient's language, with Puente's footer;
the message is delivered after the caller's transaction commits (puente.notify.tasks).
Email is not a private channel: keep diagnoses and record contents out of both (a subject
shows on a locked phone); say what happened and where to sign in to see more. Sent
messages lose their text after PUENTE_NOTIFY_RETENTION_DAYS.
"""
