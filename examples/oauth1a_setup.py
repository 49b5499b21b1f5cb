"""OAuth 1.0a set-up: IBKR's hosted API without a gateway process.  Needs the `oauth` extra.

    python examples/oauth1a_setup.py
    python examples/oauth1a_setup.py --url https://api.ibkr.com/v1/api/ --account U1234567

With OAuth there is no Client Portal Gateway to log in to: the client signs every request itself. From IBKR's
self-service portal you get a consumer key, an access token and an encrypted access token secret; you make two
RSA key pairs (signature and encryption) and Diffie-Hellman parameters and upload the public parts. The client
then obtains a live session token (a Diffie-Hellman exchange), opens the brokerage session and signs each call.

Against the hosted API (`--url`), the settings come from the IBKR_SDK_OAUTH1A_* environment variables
(CONSUMER_KEY, ACCESS_TOKEN, ACCESS_TOKEN_SECRET, ENCRYPTION_KEY_FP, SIGNATURE_KEY_FP, DH_PRIME, REALM).
Offline, the example plays the portal's part: it makes throwaway keys in a temporary directory and starts the
simulator in OAuth mode, which checks every signature as IBKR does.
"""

from __future__ import annotations

import base64
import secrets
import tempfile
from pathlib import Path

from _common import parser, step

from ibkr_sdk import IbkrClient, OAuth1aConfig

# IBKR's published Diffie-Hellman prime of its test consumer (2048 bits, generator 2); real consumers make their own
# with `openssl dhparam`. Generating one here would take seconds.
TEST_DH_PRIME = (
    "f51d7ab737a452668fd8b5eec12fcdc3c01a0744d93db2e9b1dc335bd2551ec67e11becc60c33a73497a0f7c086d87e45781ada35b7af72708f3"
    "1ae221347a1c6517575a347df83a321d05450547ee13a8182280ed81423002aa6337b48a251d840bfdabe8d41b8109284933a6c33bc6652ea9c7"
    "a5fd6b4945b7b39f1d951ae19b9192061e2f9de84768b67c425258724cdb96975917cabdea87e7e0bc72b01a331d06f2f34229a5ec742b399fcf"
    "fa510bf6b8f9b5bf9858f058371a49aa4f950f7fbfb3f47710af34baa83fff1b467d38d0e6b1b0a2d117f178cf930d7dfdcc8f6755a2229d4849"
    "2a967f493041121e382b9e87ca1368c09f54e6352d909f2b"
)


def use(client: IbkrClient) -> None:
    step("Signed calls")
    print(f"  accounts: {[a['id'] for a in client.portfolio_accounts().data]}")
    print(f"  AAPL: {client.stock_conid_by_symbol('AAPL').data['AAPL']}")
    print(f"  {client!r}")  # secrets never appear in reprs, logs or errors


def offline() -> None:
    from Crypto.Cipher import PKCS1_v1_5
    from Crypto.PublicKey import RSA

    from ibkr_sdk.simulator import OAuthSettings, Simulator

    with tempfile.TemporaryDirectory() as folder:
        step("The portal's part: keys, a consumer, an access token and its encrypted secret")
        signature, encryption = RSA.generate(2048), RSA.generate(2048)
        signature_fp, encryption_fp = Path(folder, "private_signature.pem"), Path(folder, "private_encryption.pem")
        signature_fp.write_bytes(signature.export_key())
        encryption_fp.write_bytes(encryption.export_key())
        secret = secrets.token_bytes(32)  # IBKR keeps it; you get it encrypted with your public encryption key
        encrypted_secret = base64.b64encode(PKCS1_v1_5.new(encryption.publickey()).encrypt(secret)).decode()
        consumer, access_token = "EXAMPLECO", secrets.token_hex(10)
        print(f"  keys in {folder}; consumer {consumer}; access token {access_token[:4]}...")
        settings = OAuthSettings(
            consumer_key=consumer,
            access_token=access_token,
            access_token_secret_hex=secret.hex(),
            signature_public_key=signature.publickey().export_key().decode(),
            dh_prime=int(TEST_DH_PRIME, 16),
        )
        with Simulator(oauth=settings) as sim:
            step("Your part: the configuration (the simulator stands in for IBKR's hosted API)")
            config = OAuth1aConfig(
                oauth_rest_url=sim.url,
                consumer_key=consumer,
                access_token=access_token,
                access_token_secret=encrypted_secret,
                signature_key_fp=str(signature_fp),
                encryption_key_fp=str(encryption_fp),
                dh_prime=TEST_DH_PRIME,
                maintain_oauth=False,  # no background renewal thread for a short script
            )
            print(f"  {config!r}"[:160] + " ...")
            with IbkrClient(use_oauth=True, oauth_config=config, account_id=sim.accounts[0]) as client:
                use(client)
            first = sim.requests[0]
            print(f"  first request: {first.method} {first.path} (the live session token), then every call signed")


def main() -> None:
    args = parser(__doc__).parse_args()
    if not args.url:
        offline()
        return
    config = OAuth1aConfig(oauth_rest_url=args.url)  # everything else from IBKR_SDK_OAUTH1A_* variables
    config.validate()  # one clear error per missing or malformed setting, before anything is sent
    with IbkrClient(use_oauth=True, oauth_config=config, account_id=args.account, cacert=args.cacert) as client:
        use(client)


if __name__ == "__main__":
    main()
