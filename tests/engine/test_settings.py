import pytest

from app.settings import ConfigError, load_settings


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings.celery_broker_url == "redis://127.0.0.1:6379/0"
    assert settings.port == 8000 and settings.flower_port == 5555
    assert settings.log_format == "json"


def test_values_are_cast() -> None:
    settings = load_settings(
        {"WORKFLOW_RETRY_DELAY": "0.5", "WORKFLOW_RETRY_ATTEMPTS": "7", "LOG_FORMAT": "TEXT"}
    )
    assert (settings.workflow_retry_delay, settings.workflow_retry_attempts) == (0.5, 7)
    assert settings.log_format == "text"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKFLOW_RETRY_ATTEMPTS", "three"),
        ("WORKFLOW_RETRY_ATTEMPTS", "0"),
        ("WORKFLOW_RETRY_DELAY", "soon"),
        ("WORKFLOW_STEP_TIMEOUT", "-1"),
        ("PORT", "http"),
        ("LOG_FORMAT", "xml"),
        ("DATABASE_URL", "mysql://x"),
        ("CELERY_BROKER_URL", "kafka://x"),
        ("FLOWER_BASIC_AUTH", "nopassword"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value})


def test_visibility_timeout_must_outlast_the_step_time_limit() -> None:
    with pytest.raises(ConfigError, match="CELERY_VISIBILITY_TIMEOUT"):
        load_settings({"WORKFLOW_STEP_TIMEOUT": "600", "CELERY_VISIBILITY_TIMEOUT": "900"})


def test_retention_must_keep_at_least_a_day_for_the_metrics() -> None:
    with pytest.raises(ConfigError, match="WORKFLOW_CLEANUP_RETENTION"):
        load_settings({"WORKFLOW_CLEANUP_RETENTION": "3600"})


@pytest.mark.parametrize("provider", [{"SENDGRID_API_KEY": "SG.x.y"}, {"SMTP_URL": "smtp://h:587"}])
@pytest.mark.parametrize("sender", ["stepwise@localhost", "stepwise", "a b@example.com", "<>"])
def test_a_real_email_provider_needs_an_email_from_address(provider, sender) -> None:
    with pytest.raises(ConfigError, match="EMAIL_FROM must be an email address"):
        load_settings({**provider, "EMAIL_FROM": sender})


@pytest.mark.parametrize("sender", ["team@example.com", "Stepwise <team@mail.example.org>"])
def test_an_email_from_address_with_or_without_a_name_is_accepted(sender) -> None:
    assert load_settings({"SMTP_URL": "smtp://h:587", "EMAIL_FROM": sender}).email_from == sender


def test_the_default_sender_is_an_address_and_the_console_takes_anything() -> None:
    assert load_settings({"SENDGRID_API_KEY": "SG.x.y"}).email_from == "stepwise@example.com"
    assert load_settings({"EMAIL_FROM": "stepwise@localhost"}).email_from == "stepwise@localhost"
