// Uses the client through its published declarations only (see tsconfig.json beside it).
import {
  IbkrClient,
  IbkrHttpError,
  IbkrOAuth2Error,
  IbkrValidationError,
  PACING,
  type OAuth2Options,
  type TlsOptions,
} from "../../../.ts-dts/index.js";

const tls: TlsOptions = { ca: "-----BEGIN CERTIFICATE-----", rejectUnauthorized: true };
const client = new IbkrClient({ baseUrl: "https://localhost:5000/v1/api", accountId: "DU1234567", tls });
export async function quote(): Promise<number | undefined> {
  try {
    const answer = await client.marketdata.liveMarketdataSnapshot({ conids: [265598], fields: ["31"] });
    return answer.length + PACING.global.rate;
  } catch (error) {
    if (error instanceof IbkrValidationError || error instanceof IbkrHttpError) return undefined;
    throw error;
  }
}

const oauth2: OAuth2Options = { clientId: "c", clientKeyId: "k", privateKey: "PEM", username: "u", scope: "s" };
export const hosted = (): IbkrClient => new IbkrClient({ oauth2, timeoutMs: 5000 });
export const failedStep = (error: unknown) => (error instanceof IbkrOAuth2Error ? error.step : undefined);
