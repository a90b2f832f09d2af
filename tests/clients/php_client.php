<?php
// Real-client check with PHP's SoapClient: load a service's WSDL from the
// facade (SOAP 1.1, and 1.2 where the contract binds it), require
// __getFunctions() to list every operation, then call each one with its
// sample payload. What the sample must get comes from the manifest: a
// response, read through SoapClient's stdClass objects and checked against
// the field rules derived from the contract (rules.tsv beside the
// manifest); an accepted one-way call (null, HTTP 202); a SoapFault whose
// detail carries the given soapgate code; or, for a fault the WSDL declares,
// a SoapFault whose detail holds the fault's element (printed as JSON on a
// `read` line for tests/clients/real_clients.rs to check). Operations expected to answer are
// called a second time with an element the schema does not allow, which
// must fail with INVALID_REQUEST.
//
// Usage: php php_client.php BASE_URL MANIFEST SERVICE
// MANIFEST: see tests/clients/real_clients.rs (service, operation, style, versions,
// one-way, sample path, expectation; tab-separated). Prints one line per
// check; exits 1 when any check failed.

const SOAP_ENVELOPE_NS = [
    'http://schemas.xmlsoap.org/soap/envelope/',
    'http://www.w3.org/2003/05/soap-envelope',
];
// An element no example schema declares: appended to a payload it makes
// the request invalid.
const INVALID_CHILD = '<sgt:unexpected xmlns:sgt="urn:soapgate:test:invalid">x</sgt:unexpected>';

$failures = 0;

function report(bool $ok, string $what, string $detail = ''): void
{
    global $failures;
    if (!$ok) {
        $failures++;
    }
    echo ($ok ? 'ok   ' : 'FAIL '), $what, ($detail === '' ? '' : ": $detail"), "\n";
}

function read_manifest(string $path, string $service): array
{
    $ops = [];
    foreach (file($path, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) as $line) {
        if ($line[0] === '#') {
            continue;
        }
        [$svc, $op, $style, $versions, $oneWay, $sample, $expect] = explode("\t", $line);
        if ($svc === $service) {
            $ops[] = [
                'name' => $op,
                'style' => $style,
                'versions' => explode(',', $versions),
                'one_way' => $oneWay === '1',
                'sample' => $sample,
                'expect' => $expect,
            ];
        }
    }
    return $ops;
}

// [operation => [[path, kind, arg], ...]] for one service.
function read_rules(string $path, string $service): array
{
    $rules = [];
    foreach (file($path, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) as $line) {
        if ($line[0] === '#') {
            continue;
        }
        [$svc, $op, $rulePath, $kind, $arg] = explode("\t", $line);
        if ($svc === $service) {
            $rules[$op][] = [$rulePath, $kind, $arg];
        }
    }
    return $rules;
}

// SoapClient's result as plain data: objects become ['field' => value]
// maps (tagged so they stay distinguishable from lists).
function plain($value)
{
    if (is_object($value)) {
        $out = [];
        foreach (get_object_vars($value) as $k => $v) {
            $out[$k] = plain($v);
        }
        return new ArrayObject($out);
    }
    if (is_array($value)) {
        return array_map('plain', $value);
    }
    return $value;
}

function is_map($v): bool
{
    return $v instanceof ArrayObject;
}

// Field names of each object path, from the `children` rules; attributes
// without their "@" and simple content as "_", as SoapClient names them.
function field_names(array $rules): array
{
    $out = [];
    foreach ($rules as [$path, $kind, $arg]) {
        if ($kind === 'children') {
            $out[$path] = array_map(fn ($n) => $n === '#text' ? '_' : ltrim($n, '@'), explode('|', $arg));
        }
    }
    return $out;
}

function fits($tree, string $path, array $fields): bool
{
    if (is_array($tree)) {
        if (!$tree) {
            return false;
        }
        foreach ($tree as $item) {
            if (!fits($item, $path, $fields)) {
                return false;
            }
        }
        return true;
    }
    if (!isset($fields[$path])) {
        return !is_map($tree);
    }
    if (!is_map($tree)) {
        return false;
    }
    foreach ($tree as $k => $v) {
        if ($v !== null && !in_array((string) $k, $fields[$path], true)) {
            return false;
        }
    }
    return true;
}

// SoapClient hands back the only part of a response unwrapped: wrap the
// value again under the names the contract gives, until it fits.
function rewrap($tree, array $fields)
{
    $chain = [];
    $path = '';
    while (!fits($tree, $path, $fields)) {
        $names = $fields[$path] ?? [];
        if (count($names) !== 1) {
            break;
        }
        $chain[] = $names[0];
        $path = $path === '' ? $names[0] : "$path/{$names[0]}";
    }
    foreach (array_reverse($chain) as $name) {
        $tree = new ArrayObject([$name => $tree]);
    }
    return $tree;
}

// Every value at a path, lists flattened at each step, nulls left out.
function values_at($root, string $path): array
{
    $current = is_array($root) ? $root : [$root];
    if ($path === '') {
        return $current;
    }
    foreach (explode('/', $path) as $step) {
        $found = [];
        foreach ($current as $v) {
            if (is_map($v) && isset($v[$step])) {
                $x = $v[$step];
                if (is_array($x)) {
                    foreach ($x as $item) {
                        if ($item !== null) {
                            $found[] = $item;
                        }
                    }
                } else {
                    $found[] = $x;
                }
            }
        }
        $current = $found;
    }
    return $current;
}

function show($v): string
{
    if (is_map($v)) {
        $v = $v->getArrayCopy();
    }
    if (is_array($v)) {
        return json_encode(array_map(fn ($x) => is_map($x) || is_array($x) ? json_decode(show($x)) : $x, $v));
    }
    return json_encode($v);
}

// Characters, not bytes (mbstring is not always installed).
function char_count(string $s): int
{
    return (int) preg_match_all('/./us', $s);
}

// ext/soap maps xsd:int and friends to int and xsd:float/double to float,
// but keeps xsd:decimal (and the big integer types) as the string it read,
// so no precision is lost: a number is either, the string in the XSD's
// lexical form.
function is_num($v): bool
{
    return is_int($v) || is_float($v)
        || (is_string($v) && preg_match('/^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$/', $v) === 1);
}

function type_ok(string $kind, $v): bool
{
    switch ($kind) {
        case 'string':
            return is_string($v);
        case 'number':
            return is_num($v);
        case 'integer':
            return is_int($v) || (is_string($v) && preg_match('/^[+-]?[0-9]+$/', $v) === 1);
        case 'boolean':
            return is_bool($v);
    }
    return false;
}

// The broken rules, as messages.
function check_rules($tree, array $rules): array
{
    $problems = [];
    foreach ($rules as [$path, $kind, $arg]) {
        $values = values_at($tree, $path);
        $where = $path === '' ? '(root)' : $path;
        if ($kind === 'children') {
            $names = array_map(fn ($n) => $n === '#text' ? '_' : ltrim($n, '@'), explode('|', $arg));
            foreach ($values as $v) {
                if (!is_map($v)) {
                    $problems[] = "$where: " . show($v) . ' is not an object';
                    continue;
                }
                foreach ($v as $k => $x) {
                    if ($x !== null && !in_array((string) $k, $names, true)) {
                        $problems[] = "$where: unexpected field $k, expected " . implode('|', $names);
                    }
                }
            }
            continue;
        }
        if ($kind === 'required') {
            if (!$values) {
                $problems[] = "$where: required, absent";
            }
            continue;
        }
        if ($kind === 'maxItems') {
            if (count($values) > (int) $arg) {
                $problems[] = "$where: " . count($values) . " values, at most $arg allowed";
            }
            continue;
        }
        foreach ($values as $v) {
            $bad = null;
            $num = is_num($v);
            switch ($kind) {
                case 'type':
                    $bad = type_ok($arg, $v) ? null : "not a $arg (" . gettype($v) . ')';
                    break;
                case 'enum':
                    $text = is_bool($v) ? ($v ? 'true' : 'false') : (string) $v;
                    $bad = in_array($text, explode('|', $arg), true) ? null : "not one of $arg";
                    break;
                case 'pattern':
                    $re = '~' . str_replace('~', '\\~', $arg) . '~u';
                    $bad = is_string($v) && preg_match($re, $v) === 1 ? null : "does not match $arg";
                    break;
                case 'minimum':
                    $bad = $num && (float) $v >= (float) $arg ? null : "below $arg";
                    break;
                case 'maximum':
                    $bad = $num && (float) $v <= (float) $arg ? null : "above $arg";
                    break;
                case 'exclusiveMinimum':
                    $bad = $num && (float) $v > (float) $arg ? null : "not above $arg";
                    break;
                case 'exclusiveMaximum':
                    $bad = $num && (float) $v < (float) $arg ? null : "not below $arg";
                    break;
                case 'minLength':
                    $bad = char_count((string) $v) >= (int) $arg ? null : "shorter than $arg";
                    break;
                case 'maxLength':
                    $bad = char_count((string) $v) <= (int) $arg ? null : "longer than $arg";
                    break;
                case 'nonempty':
                    $bad = is_string($v) && trim($v) !== '' ? null : 'empty text';
                    break;
                default:
                    $bad = "unknown rule $kind";
            }
            if ($bad !== null) {
                $problems[] = "$where = " . show($v) . ": $bad";
            }
        }
    }
    return $problems;
}

function expect_response(SoapClient $client, string $what, string $op, array $args, array $rules): void
{
    try {
        $result = $client->__soapCall($op, $args);
    } catch (Throwable $e) {
        report(false, $what, get_class($e) . ': ' . $e->getMessage()
            . "\n  response: " . $client->__getLastResponse());
        return;
    }
    $tree = rewrap(plain($result), field_names($rules));
    $problems = check_rules($tree, $rules);
    $shown = show($tree);
    if (strlen($shown) > 300) {
        $shown = substr($shown, 0, 300) . '...';
    }
    if ($problems) {
        report(false, $what, implode('; ', $problems) . " (read: $shown)"
            . "\n  response: " . $client->__getLastResponse());
    } else {
        report(true, $what, 'response read, ' . count($rules) . " rule(s) checked: $shown");
    }
}

// An async operation: a ticket (jobId, status), then Get{op}Result (which
// the published WSDL declares) until DONE; the rules apply to the original
// response element inside its result.
function expect_ticket(SoapClient $client, string $what, string $op, array $args, array $rules): void
{
    try {
        $ticket = $client->__soapCall($op, $args);
        $jobId = (string) ($ticket->jobId ?? '');
        if ($jobId === '' || !in_array($ticket->status ?? '', ['QUEUED', 'RUNNING', 'DONE'], true)) {
            report(false, $what, 'ticket ' . show(plain($ticket)));
            return;
        }
        $poll = new SoapVar('<sg:Get' . $op . 'Result xmlns:sg="urn:soapgate:v1"><sg:jobId>'
            . htmlspecialchars($jobId, ENT_XML1) . '</sg:jobId></sg:Get' . $op . 'Result>', XSD_ANYXML);
        $deadline = microtime(true) + 120;
        $polls = 0;
        do {
            $answer = $client->__soapCall("Get{$op}Result", [$poll]);
            $polls++;
            if ((string) $answer->jobId !== $jobId) {
                report(false, $what, "poll answered job {$answer->jobId}, not $jobId");
                return;
            }
            if (in_array($answer->status, ['DONE', 'FAILED'], true) || microtime(true) > $deadline) {
                break;
            }
            usleep(200000);
        } while (true);
    } catch (Throwable $e) {
        report(false, $what, get_class($e) . ': ' . $e->getMessage()
            . "\n  response: " . $client->__getLastResponse());
        return;
    }
    if ($answer->status !== 'DONE') {
        report(false, $what, "status {$answer->status} after $polls poll(s): "
            . ($answer->faultCode ?? '') . ' ' . ($answer->faultText ?? ''));
        return;
    }
    // One response element by ref: its content is what a synchronous call
    // would have returned.
    $result = plain($answer->result);
    if ($result instanceof ArrayObject && count($result) === 1) {
        $copy = $result->getArrayCopy();
        $result = reset($copy);
    }
    $tree = rewrap($result, field_names($rules));
    $problems = check_rules($tree, $rules);
    $shown = show($tree);
    if (strlen($shown) > 300) {
        $shown = substr($shown, 0, 300) . '...';
    }
    if ($problems) {
        report(false, $what, implode('; ', $problems) . " (read: $shown)"
            . "\n  response: " . $client->__getLastResponse());
    } else {
        report(true, $what, "job $jobId: ticket polled to DONE, " . count($rules)
            . " rule(s) checked after $polls poll(s): $shown");
    }
}

function expect_accepted(SoapClient $client, string $what, string $op, array $args): void
{
    try {
        $result = $client->__soapCall($op, $args);
    } catch (Throwable $e) {
        report(false, $what, get_class($e) . ': ' . $e->getMessage());
        return;
    }
    $status = '';
    if (preg_match('~^HTTP/\S+\s+(\d+)~', (string) $client->__getLastResponseHeaders(), $m)) {
        $status = $m[1];
    }
    report($result === null && $status === '202', $what,
        'accepted, SoapClient returned ' . var_export($result, true) . ", HTTP $status");
}

function element_children(DOMNode $node): array
{
    $out = [];
    foreach ($node->childNodes as $child) {
        if ($child instanceof DOMElement) {
            $out[] = $child;
        }
    }
    return $out;
}

// [header elements, body payload elements] of a sample file; a file that is
// not an envelope is the payload itself.
function read_sample(string $path): array
{
    $doc = new DOMDocument();
    if (!@$doc->load($path)) {
        throw new RuntimeException("$path is not well-formed XML");
    }
    $root = $doc->documentElement;
    if (!in_array($root->namespaceURI, SOAP_ENVELOPE_NS, true)) {
        return [[], [$root]];
    }
    $headers = [];
    $payload = null;
    foreach (element_children($root) as $part) {
        if ($part->localName === 'Header') {
            $headers = element_children($part);
        } elseif ($part->localName === 'Body') {
            $payload = element_children($part);
        }
    }
    if ($payload === null) {
        throw new RuntimeException("$path: envelope without a Body");
    }
    return [$headers, $payload];
}

// An element as a standalone XML string, with the namespaces it uses.
function standalone_xml(DOMElement $el): string
{
    $doc = new DOMDocument();
    $doc->appendChild($doc->importNode($el, true));
    return $doc->saveXML($doc->documentElement);
}

// The call arguments: document style passes each Body element as literal
// XML; rpc style passes the part accessors inside the operation wrapper,
// since SoapClient writes the wrapper itself.
function call_args(array $op, array $payload, bool $invalid): array
{
    if ($op['style'] === 'rpc') {
        $parts = array_map('standalone_xml', element_children($payload[0]));
        if ($invalid) {
            $parts[] = INVALID_CHILD;
        }
        return array_map(fn ($xml) => new SoapVar($xml, XSD_ANYXML), $parts);
    }
    $args = [];
    foreach ($payload as $i => $el) {
        $xml = standalone_xml($el);
        if ($invalid && $i === 0) {
            // Before the closing tag of the payload root.
            $el2 = $el->cloneNode(true);
            $frag = $el2->ownerDocument->createDocumentFragment();
            $frag->appendXML(INVALID_CHILD);
            $el2->appendChild($frag);
            $xml = standalone_xml($el2);
        }
        $args[] = new SoapVar($xml, XSD_ANYXML);
    }
    return $args;
}

function soap_headers(array $headers): array
{
    $out = [];
    foreach ($headers as $h) {
        // With literal XML as its data, SoapClient writes the data in place
        // of the header element: pass the whole element.
        $xml = new SoapVar(standalone_xml($h), XSD_ANYXML);
        $out[] = new SoapHeader($h->namespaceURI ?? '', $h->localName, $xml);
    }
    return $out;
}

function soapgate_code($detail): ?string
{
    if (is_object($detail) && isset($detail->Error) && is_object($detail->Error) && isset($detail->Error->Code)) {
        return (string) $detail->Error->Code;
    }
    return null;
}

function expect_fault(SoapClient $client, string $what, string $version, string $op, array $args, string $want): void
{
    $wantSoap = [
        'NOT_MAPPED' => ['1.1' => 'Server', '1.2' => 'Receiver'],
        'MODEL_THROTTLED' => ['1.1' => 'Server', '1.2' => 'Receiver'],
        'INVALID_REQUEST' => ['1.1' => 'Client', '1.2' => 'Sender'],
    ][$want][$version];
    try {
        $result = $client->__soapCall($op, $args);
    } catch (SoapFault $f) {
        $code = soapgate_code($f->detail ?? null);
        $soapCode = preg_replace('/^.*:/', '', (string) $f->faultcode);
        $problems = [];
        if ($code !== $want) {
            $problems[] = 'soapgate code ' . var_export($code, true) . ", expected $want";
        }
        if ($soapCode !== $wantSoap) {
            $problems[] = "SOAP fault code '{$f->faultcode}', expected $wantSoap";
        }
        $sentType = '';
        if (preg_match('/^Content-Type:\s*([^;\r\n]+)/mi', (string) $client->__getLastRequestHeaders(), $m)) {
            $sentType = strtolower(trim($m[1]));
        }
        $wantType = $version === '1.2' ? 'application/soap+xml' : 'text/xml';
        if ($sentType !== $wantType) {
            $problems[] = "SoapClient sent Content-Type '$sentType', expected $wantType";
        }
        if ($problems) {
            report(false, $what, implode('; ', $problems)
                . "\n  request: " . $client->__getLastRequest()
                . "\n  response: " . $client->__getLastResponse());
        } else {
            report(true, $what, "SoapFault {$f->faultcode} $code: {$f->faultstring}");
        }
        return;
    } catch (Throwable $e) {
        report(false, $what, get_class($e) . ' instead of a SoapFault: ' . $e->getMessage());
        return;
    }
    report(false, $what, 'no SoapFault; the call returned ' . var_export($result, true)
        . "\n  response: " . $client->__getLastResponse());
}

// A fault the WSDL declares (expect: declared:NAME:CODE:LOCAL:NS): a
// SoapFault with the SOAP code, whose detail SoapClient read into an object
// holding the detail element; what it read goes out on a `read` line for
// tests/clients/real_clients.rs to check against the contract's rules.
function expect_declared(SoapClient $client, string $what, string $service, string $version, string $op, array $args, string $expect): void
{
    [, $name, $code, $local] = explode(':', $expect, 5);
    $wantSoap = $version === '1.1' ? $code : ['Client' => 'Sender', 'Server' => 'Receiver'][$code];
    try {
        $result = $client->__soapCall($op, $args);
    } catch (SoapFault $f) {
        $soapCode = preg_replace('/^.*:/', '', (string) $f->faultcode);
        if ($soapCode !== $wantSoap) {
            report(false, $what, "SOAP fault code '{$f->faultcode}', expected $wantSoap: {$f->faultstring}");
            return;
        }
        $detail = $f->detail ?? null;
        $value = is_object($detail) && isset($detail->$local) ? $detail->$local : null;
        if ($value === null) {
            report(false, $what, "no $local in the fault's detail: " . json_encode($detail)
                . "\n  response: " . $client->__getLastResponse());
            return;
        }
        echo implode("\t", ['read', $service, $op, $version, 'fault',
            "$what: declared fault $name as SoapFault {$f->faultcode}: {$f->faultstring}",
            json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE)]), "\n";
        return;
    } catch (Throwable $e) {
        report(false, $what, get_class($e) . ' instead of a SoapFault: ' . $e->getMessage());
        return;
    }
    report(false, $what, 'no SoapFault; the call returned ' . var_export($result, true));
}

function main(array $argv): int
{
    global $failures;
    if (count($argv) !== 4) {
        fwrite(STDERR, "usage: php php_client.php BASE_URL MANIFEST SERVICE\n");
        return 2;
    }
    [, $base, $manifest, $service] = $argv;
    ini_set('default_socket_timeout', '30');
    $ops = read_manifest($manifest, $service);
    $rules = read_rules(dirname($manifest) . '/rules.tsv', $service);
    if (!$ops) {
        report(false, "$service: manifest", 'no operations listed');
        return 1;
    }
    $wsdl = "$base/soap/$service?wsdl";
    $versions = [];
    foreach ($ops as $op) {
        foreach ($op['versions'] as $v) {
            $versions[$v] = true;
        }
    }
    ksort($versions);
    foreach (array_keys($versions) as $version) {
        $where = "$service [SOAP $version]";
        try {
            $client = new SoapClient($wsdl, [
                'cache_wsdl' => WSDL_CACHE_NONE,
                'soap_version' => $version === '1.2' ? SOAP_1_2 : SOAP_1_1,
                'exceptions' => true,
                'trace' => true,
                'connection_timeout' => 30,
                'features' => SOAP_SINGLE_ELEMENT_ARRAYS,
            ]);
        } catch (Throwable $e) {
            report(false, "$where: load $wsdl", get_class($e) . ': ' . $e->getMessage());
            continue;
        }
        report(true, "$where: load $wsdl");
        $functions = $client->__getFunctions() ?? [];
        $listed = [];
        foreach ($functions as $sig) {
            if (preg_match('/(\w+)\(/', $sig, $m)) {
                $listed[$m[1]] = $sig;
            }
        }
        foreach ($ops as $op) {
            if (!in_array($version, $op['versions'], true)) {
                continue;
            }
            $name = $op['name'];
            $what = "$where {$name}";
            if (!isset($listed[$name])) {
                report(false, "$what: listed", '__getFunctions() gives ' . json_encode($functions));
                continue;
            }
            report(true, "$what: listed", $listed[$name]);
            try {
                [$headers, $payload] = read_sample($op['sample']);
                if (!$payload) {
                    throw new RuntimeException('the sample Body is empty');
                }
                $client->__setSoapHeaders(soap_headers($headers));
                $args = call_args($op, $payload, false);
                $bad = call_args($op, $payload, true);
            } catch (Throwable $e) {
                report(false, "$what: sample", $e->getMessage());
                continue;
            }
            if ($op['expect'] === 'response') {
                expect_response($client, "$what: sample request", $name, $args, $rules[$name] ?? []);
            } elseif ($op['expect'] === 'accepted') {
                expect_accepted($client, "$what: sample request", $name, $args);
            } elseif ($op['expect'] === 'ticket') {
                if (!isset($listed["Get{$name}Result"])) {
                    report(false, "$what: Get{$name}Result listed", '__getFunctions() gives ' . json_encode($functions));
                    continue;
                }
                expect_ticket($client, "$what: sample request", $name, $args, $rules[$name] ?? []);
            } elseif (str_starts_with($op['expect'], 'declared:')) {
                expect_declared($client, "$what: sample request", $service, $version, $name, $args, $op['expect']);
                continue;
            } else {
                expect_fault($client, "$what: sample request", $version, $name, $args, $op['expect']);
                continue;
            }
            // One-way operations too: SoapClient reads a fault sent back
            // on the same exchange and raises a SoapFault.
            expect_fault($client, "$what: invalid request (unexpected element)", $version, $name, $bad, 'INVALID_REQUEST');
        }
    }
    echo 'PHP ', PHP_VERSION, ": $service: $failures failed check(s)\n";
    return $failures ? 1 : 0;
}

exit(main($argv));
