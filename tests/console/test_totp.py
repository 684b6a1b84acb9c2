"""RFC 6238 TOTP, checked against the RFC's own test vectors (Appendix B)."""
from appliance.console import totp

# RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890", 8 digits
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of that seed
RFC_VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
               (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")]


def test_rfc6238_appendix_b_sha1_vectors():
    for t, code in RFC_VECTORS:
        assert totp.totp(RFC_SECRET, t, digits=8) == code, t


def test_a_code_is_good_one_step_either_side_and_not_beyond():
    secret = totp.new_secret()
    now = 1_800_000_015.0
    code = totp.totp(secret, now)
    assert totp.verify(secret, code, at=now) == int(now // 30)
    assert totp.verify(secret, code, at=now + 30) is not None      # phone clock 30 s behind
    assert totp.verify(secret, code, at=now - 30) is not None      # or ahead
    assert totp.verify(secret, code, at=now + 90) is None
    assert totp.verify(secret, "12345", at=now) is None             # wrong length
    assert totp.verify(secret, "abcdef", at=now) is None


def test_new_secrets_are_160_bits_and_the_uri_names_account_and_issuer():
    s = totp.new_secret()
    assert len(totp._key(s)) == 20
    assert totp.new_secret() != s
    u = totp.uri(s, "alice")
    assert u.startswith("otpauth://totp/sessiontap%3Aalice?secret=" + s)
