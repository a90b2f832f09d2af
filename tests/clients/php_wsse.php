<?php
// Real-client check of tenant authentication with PHP's SoapClient: call
// SupportDesk.TriageTicket with a SoapHeader carrying a wsse:Security
// UsernameToken (PasswordText, or PasswordDigest computed as the profile
// says: base64(sha1(nonce . created . password))), and check the outcome.
//
// Usage: php php_wsse.php BASE_URL CASE...
// CASE is USER:PASSWORD:MODE:EXPECT, MODE "text" or "digest", EXPECT "ok"
// or a soapgate fault code. Prints one line per case; exits 1 when any
// failed.

const WSSE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd';
const WSU = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd';
const PROFILE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0';

function security_header(string $user, string $password, string $mode): SoapHeader
{
    $u = htmlspecialchars($user, ENT_XML1);
    if ($mode === 'digest') {
        $nonce = random_bytes(16);
        $created = gmdate('Y-m-d\TH:i:s\Z');
        $digest = base64_encode(sha1($nonce . $created . $password, true));
        $token = '<wsse:Username>' . $u . '</wsse:Username>'
            . '<wsse:Password Type="' . PROFILE . '#PasswordDigest">' . $digest . '</wsse:Password>'
            . '<wsse:Nonce>' . base64_encode($nonce) . '</wsse:Nonce>'
            . '<wsu:Created>' . $created . '</wsu:Created>';
    } else {
        $token = '<wsse:Username>' . $u . '</wsse:Username>'
            . '<wsse:Password Type="' . PROFILE . '#PasswordText">'
            . htmlspecialchars($password, ENT_XML1) . '</wsse:Password>';
    }
    $xml = '<wsse:Security xmlns:wsse="' . WSSE . '" xmlns:wsu="' . WSU . '">'
        . '<wsse:UsernameToken>' . $token . '</wsse:UsernameToken></wsse:Security>';
    return new SoapHeader(WSSE, 'Security', new SoapVar($xml, XSD_ANYXML), true);
}

$base = $argv[1];
$failures = 0;
foreach (array_slice($argv, 2) as $case) {
    [$user, $password, $mode, $expect] = explode(':', $case);
    $client = new SoapClient($base . '/soap/SupportDesk?wsdl', [
        'cache_wsdl' => WSDL_CACHE_NONE,
        'exceptions' => true,
        'trace' => true,
        'soap_version' => SOAP_1_1,
    ]);
    $client->__setSoapHeaders([security_header($user, $password, $mode)]);
    try {
        $r = $client->TriageTicket(['Ticket' => [
            'TicketId' => 'INC0048213',
            'Channel' => 'Email',
            'CustomerTier' => 'Business',
            'Product' => 'Payroll Cloud',
            'Subject' => 'Payroll export failing',
            'Body' => 'Every export ends with code 0x51.',
            'ReceivedAt' => '2024-11-26T08:14:52+01:00',
        ]]);
        $got = 'ok';
        $detail = substr(json_encode($r), 0, 200);
    } catch (SoapFault $f) {
        $got = 'fault without soapgate code';
        $d = $f->detail ?? null;
        if (is_object($d) && isset($d->Error->Code)) {
            $got = (string) $d->Error->Code;
        } elseif ($f->getMessage() !== '') {
            // The detail may not map to objects: read the code from the raw response.
            if (preg_match('#<[^>]*:?Code>([A-Z_]+)<#', (string) $client->__getLastResponse(), $m)) {
                $got = $m[1];
            }
        }
        $detail = $f->getMessage();
    }
    $ok = $got === $expect;
    if (!$ok) {
        $failures++;
    }
    echo ($ok ? 'ok   ' : 'FAIL '), "$user $mode: expected $expect, got $got ($detail)\n";
}
exit($failures ? 1 : 0);
