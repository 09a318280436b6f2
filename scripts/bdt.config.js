// SMART Bulk Data Tester (https://github.com/smart-on-fhir/bdt) against a running Concord
// demo: see docs/bulk-export.md.
//
// Backend services (the default when CONCORD_BDT_CLIENT_ID is set): BDT asks Concord's token
// endpoint with client_credentials and a private_key_jwt assertion signed with the private
// JWK in the file CONCORD_BDT_KEY (ES384), for an app registered with
// `concord smart register ... --scope "system/*.rs" --jwks-file <public JWKS> --acts-for <clinician>`.
//
// Without CONCORD_BDT_CLIENT_ID: authentication "none", and a clinician's bearer token
// (`concord token create --email ...`, in CONCORD_BDT_TOKEN) sent as a custom header.
const fs = require("fs");

const backend = !!process.env.CONCORD_BDT_CLIENT_ID;
const base = process.env.CONCORD_BDT_BASE || "http://127.0.0.1:8791";

module.exports = {
    baseURL: base + "/fhir",
    systemExportEndpoint: "$export",
    patientExportEndpoint: "Patient/$export",
    groupExportEndpoint: "Group/" + (process.env.CONCORD_BDT_GROUP || "program-depression") + "/$export",
    fastestResource: "Patient",
    authentication: backend
        ? {
              type: "backend-services",
              optional: false,
              clientId: process.env.CONCORD_BDT_CLIENT_ID,
              scope: process.env.CONCORD_BDT_SCOPE || "system/*.read",
              tokenEndpoint: base + "/oauth2/token",
              privateKey: JSON.parse(fs.readFileSync(process.env.CONCORD_BDT_KEY, "utf8")),
              tokenSignAlgorithm: "ES384",
              tokenExpiresIn: "5m",
              customTokenClaims: {},
              customTokenHeaders: {},
          }
        : { type: "none" },
    requests: {
        strictSSL: false,
        timeout: 60000,
        customHeaders: backend ? {} : { Authorization: "Bearer " + process.env.CONCORD_BDT_TOKEN },
    },
};
