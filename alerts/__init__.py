"""Alerts that facility staff act on (issue 13).

Rules are data (``alerts/rules.yaml``, stored in ``alert_rules``); a separate worker
(``nzc alerts run``, :mod:`alerts.evaluate`) evaluates them from the rows the stream writes
to PostgreSQL, keeps each alert's lifecycle in the database (``alerts``, ``alert_events``) and
posts the active ones to Prometheus Alertmanager, which routes, groups, repeats, silences and
inhibits. Alertmanager delivers by e-mail, generic webhook and to our small receiver
(:mod:`alerts.channels`) that forwards to WeCom, DingTalk and Feishu group robots and MQTT.
"""
