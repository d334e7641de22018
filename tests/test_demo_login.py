from dashboard.config import Settings
from dashboard.demo.runner import banner, with_generated_login


class _Target:
    label = "private redis-server"
    notes = ()


def test_off_loopback_demo_gets_a_generated_login_shown_in_the_banner():
    settings = with_generated_login(Settings(host="0.0.0.0"))
    assert settings.username == "demo"
    assert len(settings.password) >= 12
    assert with_generated_login(Settings(host="0.0.0.0")).password != settings.password
    assert f"demo / {settings.password}" in banner(settings, _Target())


def test_loopback_banner_shows_no_login():
    assert "login" not in banner(Settings(), _Target())
