#!/usr/bin/env node
// An independent MPPS peer (Modality Performed Procedure Step, PS3.4 Annex F) for PACS Bridge's
// end-to-end tests, built on dcmjs-dimse (a devDependency of ui/: run `npm ci` in ui/ first).
//
//   node tests/peers/mpps_peer.mjs scp --port P --ae AETITLE --record FILE [--host 127.0.0.1]
//                                      [--ts explicit|implicit] [--verbose]
//     Accepts associations called AETITLE (others are rejected) for MPPS and Verification, in
//     Explicit or Implicit VR Little Endian (the proposer's order, unless --ts forces one).
//     Appends one JSON line per N-CREATE / N-SET to FILE:
//       {"command": "N-CREATE"|"N-SET", "sop_instance_uid", "calling_ae", "transfer_syntax",
//        "dataset": <request data set, DICOM JSON model (PS3.18 F.2)>, "status": <int>}
//     and keeps each step's state by SOP Instance UID, answering as PS3.4 F.7.2 says.
//     Prints "listening" on stdout once it listens; exits cleanly on SIGTERM / SIGINT.
//
//   node tests/peers/mpps_peer.mjs scu --host H --port P --called AE --calling AE
//                                      (create|set) --uid UID --dataset FILE.json|- [--timeout S]
//     Sends one N-CREATE (Affected SOP Instance UID = UID) or N-SET (Requested SOP Instance
//     UID = UID) with the DICOM JSON data set of FILE.json, and prints one JSON line:
//       {"status": <int>, "error_comment": "..."|null, "error_id": <int>|null,
//        "dataset": <response data set as DICOM JSON>|null}
//     Exit status 0 when a response came (whatever its status), 1 when the association or the
//     message failed (reason on stderr), 2 on bad usage.
//
// Library quirks handled here: dcmjs always encodes text as UTF-8 and, when it reads a data
// set, rewrites Specific Character Set (0008,0005) to "ISO_IR 192" and drops the VR of
// unknown (private) elements; so received data sets are recorded from a raw parse of the
// wire bytes (original charset value, VRs as sent), and the SCU declares ISO_IR 192 itself
// when the data set holds non-ASCII text under another character set.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// Library logging (loglevel, dcmjs) writes to console.*: keep stdout for this script's output.
console.log = console.info = console.debug = console.error;

const uiPackage = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../ui/package.json');
const requireUi = createRequire(uiPackage);
const dimse = requireUi('dcmjs-dimse');
const dcmjs = createRequire(requireUi.resolve('dcmjs-dimse'))('dcmjs'); // the copy dimse uses
const { DicomMessage, DicomMetaDictionary, ReadBufferStream } = dcmjs.data;
const { Client, Dataset, Scp } = dimse;
const { NCreateRequest, NSetRequest } = dimse.requests;
const { CEchoResponse, NCreateResponse, NSetResponse } = dimse.responses;
const { PresentationContextResult: PC, RejectResult, RejectSource, RejectReason, SopClass,
  TransferSyntax: TS } = dimse.constants;

const MPPS = SopClass.ModalityPerformedProcedureStep; // 1.2.840.10008.3.1.2.3.3
const STATUS = '00400252'; // Performed Procedure Step Status
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

function usage(message) {
  process.stderr.write(`mpps_peer: ${message}\n(see the header of ${process.argv[1]})\n`);
  process.exit(2);
}

// dcmjs's parsed form ({tag: {vr, Value, _rawValue}}) → DICOM JSON model: empty values have no
// "Value", empty strings inside multi-valued elements become null, binaries become InlineBinary.
function toDicomJson(parsed) {
  const out = {};
  for (const [tag, el] of Object.entries(parsed)) {
    let values = el.Value ?? [];
    if (tag === '00080005' && Array.isArray(el._rawValue)) values = el._rawValue.map((v) => v.trim());
    if (BINARY_VRS.has(el.vr)) {
      const bytes = Buffer.concat(values.map((v) => Buffer.from(v)));
      out[tag] = bytes.length ? { vr: el.vr, InlineBinary: bytes.toString('base64') } : { vr: el.vr };
      continue;
    }
    values = el.vr === 'SQ' ? values.map(toDicomJson) : values.map((v) => (v === '' ? null : v));
    out[tag] = values.some((v) => v !== null) ? { vr: el.vr, Value: values } : { vr: el.vr };
  }
  return out;
}

// Every data set dcmjs-dimse receives (command or data) is built by this method: keep a raw
// parse of the same bytes beside the naturalized elements the library makes of them.
const fromElementsBuffer = Dataset.prototype._fromElementsBuffer;
if (typeof fromElementsBuffer !== 'function') throw new Error('dcmjs-dimse changed: no Dataset._fromElementsBuffer');
Dataset.prototype._fromElementsBuffer = function (buffer, transferSyntaxUid, readOptions) {
  const bytes = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  const syntax = transferSyntaxUid === TS.ImplicitVRLittleEndian ? TS.ImplicitVRLittleEndian : TS.ExplicitVRLittleEndian;
  this.dicomJson = toDicomJson(DicomMessage._read(new ReadBufferStream(bytes), syntax, { ignoreErrors: true }));
  return fromElementsBuffer.call(this, buffer, transferSyntaxUid, readOptions);
};

// DICOM JSON → what dcmjs's naturalizeDataset / writer expect: no null inside "Value".
function forDcmjs(json) {
  for (const el of Object.values(json)) {
    if (el.vr === 'SQ') el.Value?.forEach(forDcmjs);
    else if (Array.isArray(el.Value)) el.Value = el.Value.map((v) => v ?? '');
  }
}

function datasetJson(dataset) {
  if (!dataset) return null;
  return dataset.dicomJson ?? toDicomJson(DicomMetaDictionary.denaturalizeDataset(dataset.getElements()));
}

// ---------------------------------------------------------------------------------------- SCP

function runScp(opt) {
  if (!opt.port || !opt.ae || !opt.record) usage('scp needs --port, --ae and --record');
  const tsChoices = { explicit: [TS.ExplicitVRLittleEndian], implicit: [TS.ImplicitVRLittleEndian] };
  const acceptedTs = opt.ts ? tsChoices[opt.ts] : [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian];
  if (!acceptedTs) usage('--ts is explicit or implicit');
  const record = fs.openSync(opt.record, 'a');
  const steps = new Map(); // SOP Instance UID → the step's attributes (DICOM JSON), merged by N-SET

  class MppsScp extends Scp {
    associationRequested(association) {
      this.association = association;
      if (association.getCalledAeTitle() !== opt.ae) {
        console.error(`mpps_peer: rejecting association called "${association.getCalledAeTitle()}"`);
        this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized);
        return;
      }
      for (const { context } of association.getPresentationContexts()) {
        // First transfer syntax of the proposer's list that this peer accepts.
        const ts = context.getTransferSyntaxUids().find((uid) => acceptedTs.includes(uid));
        if (![MPPS, SopClass.Verification].includes(context.getAbstractSyntaxUid())) {
          context.setResult(PC.RejectAbstractSyntaxNotSupported);
        } else if (!ts) {
          context.setResult(PC.RejectTransferSyntaxesNotSupported);
        } else {
          context.setResult(PC.Accept, ts);
        }
      }
      this.sendAssociationAccept();
    }

    associationReleaseRequested() {
      this.sendAssociationReleaseResponse();
    }

    abort(source, reason) {
      console.error(`mpps_peer: association aborted by peer (source ${source}, reason ${reason})`);
      this.socket.end();
    }

    cEchoRequest(request, callback) {
      const response = CEchoResponse.fromRequest(request);
      response.setStatus(0x0000);
      callback(response);
    }

    nCreateRequest(request, callback) {
      const response = NCreateResponse.fromRequest(request);
      let uid = request.getAffectedSopInstanceUid();
      if (!uid) { // PS3.4 F.7.2.1.1: the SCP assigns the UID when the SCU gives none
        uid = Dataset.generateDerivedUid();
        response.setAffectedSopInstanceUid(uid);
      }
      this.answer('N-CREATE', request, response, callback, uid, (dataset) => {
        const status = dataset[STATUS];
        if (steps.has(uid)) return [0x0111, 'Duplicate SOP Instance'];
        if (!status) return [0x0120, 'Missing attribute (0040,0252)']; // Missing Attribute
        if (!status.Value) return [0x0121, 'Missing value of (0040,0252)']; // Missing Attribute Value
        if (status.Value[0] !== 'IN PROGRESS') return [0x0106, 'N-CREATE status must be IN PROGRESS'];
        steps.set(uid, structuredClone(dataset));
        return [0x0000];
      });
    }

    nSetRequest(request, callback) {
      const response = NSetResponse.fromRequest(request);
      const uid = request.getRequestedSopInstanceUid();
      this.answer('N-SET', request, response, callback, uid, (dataset) => {
        const step = steps.get(uid);
        if (!step) return [0x0112, 'No such SOP Instance'];
        const current = step[STATUS]?.Value?.[0];
        // PS3.4 F.7.2.2.4, Table F.7.2-2: Processing Failure 0110H, Error ID A710H.
        if (current === 'COMPLETED' || current === 'DISCONTINUED') {
          return [0x0110, 'Performed Procedure Step Object may no longer be updated', 0xa710];
        }
        const next = dataset[STATUS]?.Value?.[0];
        if (dataset[STATUS] && !['IN PROGRESS', 'COMPLETED', 'DISCONTINUED'].includes(next)) {
          return [0x0106, `Invalid Performed Procedure Step Status: ${next ?? '(empty)'}`];
        }
        Object.assign(step, structuredClone(dataset)); // N-SET replaces the attributes it carries
        return [0x0000];
      });
    }

    // Decide, answer and record one N-CREATE / N-SET.
    answer(command, request, response, callback, uid, decide) {
      const dataset = datasetJson(request.getDataset()) ?? {};
      let status, comment, errorId;
      try {
        [status, comment, errorId] = decide(dataset);
      } catch (err) {
        console.error(`mpps_peer: ${command} ${uid}: ${err.stack}`);
        [status, comment] = [0x0110, `Processing failure: ${err.message}`.slice(0, 64)];
      }
      response.setStatus(status);
      if (comment) response.setErrorComment(comment);
      if (errorId !== undefined) response.getCommandDataset().setElement('ErrorID', errorId);
      const context = this.association.getAcceptedPresentationContextFromRequest(request);
      const line = {
        command, sop_instance_uid: uid, calling_ae: this.association.getCallingAeTitle(),
        transfer_syntax: context?.getAcceptedTransferSyntaxUid() ?? null, dataset, status,
      };
      fs.writeSync(record, `${JSON.stringify(line)}\n`);
      callback(response);
    }
  }

  // dcmjs-dimse's Server always listens on every interface: serve its Scp from our own socket.
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const scp = new MppsScp(socket, {});
    scp.on('networkError', (err) => {
      console.error(`mpps_peer: ${err.message}`);
      socket.destroy();
    });
  });
  server.on('error', (err) => {
    console.error(`mpps_peer: ${err.message}`);
    process.exit(1);
  });
  server.listen(Number(opt.port), opt.host ?? '127.0.0.1', () => process.stdout.write('listening\n'));
  const stop = () => {
    server.close();
    for (const socket of sockets) socket.destroy();
    fs.closeSync(record);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// ---------------------------------------------------------------------------------------- SCU

function runScu(opt, operation) {
  if (!['create', 'set'].includes(operation)) usage('scu needs create or set');
  if (!opt.port || !opt.called || !opt.calling || !opt.uid || !opt.dataset) {
    usage('scu needs --port, --called, --calling, --uid and --dataset');
  }
  const json = JSON.parse(fs.readFileSync(opt.dataset === '-' ? 0 : opt.dataset, 'utf8'));
  const charset = json['00080005']?.Value?.[0];
  if (/[^\x00-\x7f]/.test(JSON.stringify(json)) && charset !== 'ISO_IR 192') {
    // dcmjs writes text as UTF-8 whatever (0008,0005) says: declare what goes on the wire.
    console.error(`mpps_peer: non-ASCII text: sending Specific Character Set ISO_IR 192 instead of ${charset ?? '(none)'}`);
    json['00080005'] = { vr: 'CS', Value: ['ISO_IR 192'] };
  }
  forDcmjs(json);
  const request = operation === 'create' ? new NCreateRequest(MPPS, opt.uid) : new NSetRequest(MPPS, opt.uid);
  request.setDataset(new Dataset(DicomMetaDictionary.naturalizeDataset(json)));

  let result = null;
  let failure = null;
  request.on('response', (response) => {
    const errorId = response.getCommandDataset().getElement('ErrorID');
    result = {
      status: response.getStatus(),
      error_comment: response.getErrorComment() || null,
      error_id: errorId ?? null,
      dataset: response.hasDataset() ? datasetJson(response.getDataset()) : null,
    };
  });
  const client = new Client();
  client.on('associationAccepted', (association) => {
    const context = association.getAcceptedPresentationContextFromRequest(request);
    if (!context) failure = 'the called AE accepted no MPPS presentation context';
  });
  client.on('associationRejected', ({ result: r, source, reason }) => {
    failure = `association rejected (result ${r}, source ${source}, reason ${reason})`;
  });
  const finish = () => {
    if (result) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    }
    process.stderr.write(`mpps_peer: ${failure ?? 'association ended without a response'}\n`);
    process.exit(1);
  };
  client.on('networkError', (err) => { // timeouts too: no point waiting for the peer to close
    failure ??= err.message;
    finish();
  });
  client.on('closed', finish);
  const ms = Number(opt.timeout ?? 30) * 1000;
  client.addRequest(request);
  client.send(opt.host ?? '127.0.0.1', Number(opt.port), opt.calling, opt.called, {
    connectTimeout: ms, associationTimeout: ms, pduTimeout: ms,
  });
  client.network?.on('abort', ({ source, reason }) => {
    failure = `association aborted (source ${source}, reason ${reason})`;
    client.network?.socket.end();
  });
}

// --------------------------------------------------------------------------------------- main

const string = { type: 'string' };
let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      host: string, port: string, ae: string, record: string, ts: string, called: string,
      calling: string, uid: string, dataset: string, timeout: string, verbose: { type: 'boolean' },
    },
  });
} catch (err) {
  usage(err.message);
}
const [mode, operation] = args.positionals;
dimse.log.setLevel(args.values.verbose ? 'info' : 'warn');
if (mode === 'scp') runScp(args.values);
else if (mode === 'scu') runScu(args.values, operation);
else usage('first argument is scp or scu');
