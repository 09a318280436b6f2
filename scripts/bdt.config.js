// SMART Bulk Data Tester (https://github.com/smart-on-fhir/bdt) against a running Concord
// demo: see docs/bulk-export.md. The token is a clinician's bearer token
// (`concord token create --email ...`), passed in CONCORD_BDT_TOKEN; Concord has no
// backend-services (client_credentials + private_key_jwt) token endpoint yet, so BDT runs
// with authentication "none" and sends the token as a custom header.
module.exports = {
    baseURL: (process.env.CONCORD_BDT_BASE || "http://127.0.0.1:8791") + "/fhir",
    systemExportEndpoint: "$export",
    patientExportEndpoint: "Patient/$export",
    groupExportEndpoint: "Group/" + (process.env.CONCORD_BDT_GROUP || "program-depression") + "/$export",
    fastestResource: "Patient",
    authentication: { type: "none" },
    requests: {
        strictSSL: false,
        timeout: 60000,
        customHeaders: { Authorization: "Bearer " + process.env.CONCORD_BDT_TOKEN },
    },
};
