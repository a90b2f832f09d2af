#!/usr/bin/env perl
# Real-client check with Perl's SOAP::Lite. SOAP::Lite generates no
# document/literal code from a WSDL (its stubs send rpc/encoded calls with
# xsi:typed children), so the calls are hand-built from the facade's
# published WSDL, as SOAP::Lite's users build them: the endpoint, SOAP
# version, soapAction and (rpc) namespace of each port and operation are
# read from the WSDL, and the sample request's payload becomes SOAP::Data
# elements (names, namespaces, attributes, values; autotyping off). The
# response is read through SOAP::Lite's own SOAP::SOM, walking the Body
# payload's children by position, and printed as JSON on a `read` line for
# tests/clients/real_clients.rs to check against the contract's rules. A
# fault must come back as a SOAP::SOM fault (faultcode, faultstring,
# faultdetail) carrying soapgate's code, or, for a fault the WSDL declares,
# the fault's element in its detail (printed on a `read` line too); an async
# operation's ticket is polled with Get{Op}Result until DONE.
#
# Usage: perl perl_client.pl BASE_URL MANIFEST SERVICE
# MANIFEST: see tests/clients/real_clients.rs. Exits 1 when any check failed.

use strict;
use warnings;

use JSON::PP;
use LWP::UserAgent;
use SOAP::Lite;
use Time::HiRes qw(sleep time);
use XML::Parser;

my $WSDL_NS     = 'http://schemas.xmlsoap.org/wsdl/';
my $WSDL_SOAP11 = 'http://schemas.xmlsoap.org/wsdl/soap/';
my $WSDL_SOAP12 = 'http://schemas.xmlsoap.org/wsdl/soap12/';
my $SOAPGATE_NS = 'urn:soapgate:v1';
my %ENVELOPE_NS = (
    'http://schemas.xmlsoap.org/soap/envelope/' => 1,
    'http://www.w3.org/2003/05/soap-envelope'   => 1,
);
my %SOAP_CODES = (
    NOT_MAPPED      => [ 'Server', 'Receiver' ],
    MODEL_THROTTLED => [ 'Server', 'Receiver' ],
    INVALID_REQUEST => [ 'Client', 'Sender' ],
);

my $failures = 0;
my $json     = JSON::PP->new->canonical->allow_nonref;

sub report {
    my ( $ok, $what, $detail ) = @_;
    $failures++ unless $ok;
    print( ( $ok ? 'ok   ' : 'FAIL ' ) . $what . ( defined $detail && length $detail ? ": $detail" : '' ) . "\n" );
}

sub read_line {
    my ( $service, $op, $version, $kind, $label, $tree ) = @_;
    print join( "\t", 'read', $service, $op, $version, $kind, $label, $json->encode($tree) ) . "\n";
}

# --- XML as trees ---------------------------------------------------------

# Parse XML into {name, ns, attrs, children, text}, namespaces resolved.
sub parse_xml {
    my ($xml) = @_;
    my $parser = XML::Parser->new( Namespaces => 1 );
    my ( @stack, $root );
    $parser->setHandlers(
        Start => sub {
            my ( $expat, $name, %attrs ) = @_;
            my %plain;
            for my $k ( keys %attrs ) {
                my $ans = $expat->namespace($k) // '';
                next if $ans eq 'http://www.w3.org/2001/XMLSchema-instance';
                $plain{$k} = $attrs{$k};
            }
            my $el = { name => $name, ns => $expat->namespace($name) // '', attrs => \%plain, children => [], text => '' };
            if (@stack) { push @{ $stack[-1]{children} }, $el } else { $root = $el }
            push @stack, $el;
        },
        End  => sub { pop @stack },
        Char => sub { $stack[-1]{text} .= $_[1] if @stack },
    );
    $parser->parse($xml);
    return $root;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "cannot read $path: $!";
    local $/;
    return scalar <$fh>;
}

sub sample_payload {
    my ($path) = @_;
    my $root = parse_xml( slurp($path) );
    return $root unless $ENVELOPE_NS{ $root->{ns} };
    my ($body) = grep { $_->{name} eq 'Body' } @{ $root->{children} };
    die "$path: envelope without a payload" unless $body && @{ $body->{children} };
    return $body->{children}[0];
}

# The WSDL's ports of a service: name, address, SOAP version, style, and per
# operation its soapAction and rpc namespace.
sub read_wsdl {
    my ( $xml, $service ) = @_;
    my $root = parse_xml($xml);
    my ( %bindings, @ports );
    for my $b ( grep { $_->{ns} eq $WSDL_NS && $_->{name} eq 'binding' } @{ $root->{children} } ) {
        my $info = { ops => {} };
        for my $c ( @{ $b->{children} } ) {
            if ( $c->{name} eq 'binding' && ( $c->{ns} eq $WSDL_SOAP11 || $c->{ns} eq $WSDL_SOAP12 ) ) {
                $info->{version} = $c->{ns} eq $WSDL_SOAP12 ? '1.2' : '1.1';
                $info->{style}   = $c->{attrs}{style} // 'document';
            }
            next unless $c->{ns} eq $WSDL_NS && $c->{name} eq 'operation';
            my %op = ( style => undef, action => '', namespace => undef );
            for my $oc ( @{ $c->{children} } ) {
                if ( $oc->{name} eq 'operation' ) {
                    $op{action} = $oc->{attrs}{soapAction} // '';
                    $op{style}  = $oc->{attrs}{style};
                }
                if ( $oc->{name} eq 'input' ) {
                    for my $body ( grep { $_->{name} eq 'body' } @{ $oc->{children} } ) {
                        $op{namespace} = $body->{attrs}{namespace};
                    }
                }
            }
            $info->{ops}{ $c->{attrs}{name} } = \%op;
        }
        $bindings{ $b->{attrs}{name} } = $info if $info->{version};
    }
    for my $s ( grep { $_->{ns} eq $WSDL_NS && $_->{name} eq 'service' } @{ $root->{children} } ) {
        next unless $s->{attrs}{name} eq $service;
        for my $p ( grep { $_->{name} eq 'port' } @{ $s->{children} } ) {
            ( my $bname = $p->{attrs}{binding} ) =~ s/^.*://;
            my $binding = $bindings{$bname} or next;
            my ($address) = grep { $_->{name} eq 'address' } @{ $p->{children} };
            push @ports, { name => $p->{attrs}{name}, address => $address ? $address->{attrs}{location} : '', %$binding };
        }
    }
    return @ports;
}

# --- Calls ----------------------------------------------------------------

# An element of the sample as SOAP::Data: qualified elements carry their
# namespace, unqualified ones none.
sub to_data {
    my ($el) = @_;
    my $d = SOAP::Data->name( $el->{name} );
    $d->uri( $el->{ns} ) if length $el->{ns};
    $d->attr( { %{ $el->{attrs} } } ) if %{ $el->{attrs} };
    if ( @{ $el->{children} } ) {
        $d->value( \SOAP::Data->value( map { to_data($_) } @{ $el->{children} } ) );
    }
    else {
        $d->value( $el->{text} );
        $d->type('');
    }
    return $d;
}

sub client_for {
    my ( $port, $op, $version ) = @_;
    # The SOAP version is SOAP::Lite's global setting: set it before the
    # client (and its serializer) is made.
    SOAP::Lite->soapversion($version);
    my $soap = SOAP::Lite->new( proxy => [ $port->{address}, timeout => 60 ] );
    $soap->soapversion($version);
    $soap->autotype(0);
    $soap->readable(0);
    $soap->envprefix('soap');
    # Literal bodies: no SOAP-encoding style on the envelope.
    $soap->serializer->encodingStyle('');
    my $action = $port->{ops}{ $op->{name} }{action};
    $soap->on_action( sub { $version eq '1.1' ? qq("$action") : $action } );
    $soap->on_fault( sub { my ( $soap, $res ) = @_; return ref $res ? $res : SOAP::SOM->new; } );
    return $soap;
}

# Call the operation with this payload; the SOAP::SOM or the transport
# error.
sub call {
    my ( $port, $op, $version, $payload ) = @_;
    my $soap  = client_for( $port, $op, $version );
    my $style = $port->{ops}{ $op->{name} }{style} // $port->{style};
    my $method;
    if ( $style eq 'rpc' ) {
        $method = SOAP::Data->name( $op->{name} )->uri( $port->{ops}{ $op->{name} }{namespace} // $payload->{ns} );
    }
    else {
        $method = SOAP::Data->name( $payload->{name} );
        $method->uri( $payload->{ns} ) if length $payload->{ns};
    }
    $method->attr( { %{ $payload->{attrs} } } ) if %{ $payload->{attrs} };
    my $som = eval { $soap->call( $method => map { to_data($_) } @{ $payload->{children} } ) };
    return ( $som, $@ || ( $soap->transport->is_success ? '' : $soap->transport->status ) );
}

# The SOM's Body payload as plain data, walked by position.
sub tree_at {
    my ( $som, $path ) = @_;
    my $d = $som->dataof($path) or return undef;
    my @children;
    for ( my $i = 1 ; ; $i++ ) {
        my $c = $som->dataof("$path/[$i]") or last;
        push @children, [ $c->name, tree_at( $som, "$path/[$i]" ) ];
    }
    my %attrs;
    my $a = $d->attr || {};
    for my $k ( keys %$a ) {
        next if $k =~ /^xmlns/ || $k =~ /XMLSchema-instance/ || $k =~ /^xsi:/;
        ( my $local = $k ) =~ s/^(\{.*\}|.*:)//;
        $attrs{"\@$local"} = $a->{$k};
    }
    if ( !@children ) {
        my $v = $d->value;
        $v = '' unless defined $v;
        return %attrs ? { %attrs, '#text' => $v } : "$v";
    }
    my %out = %attrs;
    for my $c (@children) {
        my ( $name, $value ) = @$c;
        if ( exists $out{$name} ) {
            $out{$name} = [ $out{$name} ] unless ref $out{$name} eq 'ARRAY';
            push @{ $out{$name} }, $value;
        }
        else {
            $out{$name} = $value;
        }
    }
    return \%out;
}

sub judge_fault {
    my ( $what, $want, $version, $som, $error ) = @_;
    if ( !$som || !ref $som ) {
        report( 0, $what, "no SOAP answer: $error" );
        return;
    }
    if ( !$som->fault ) {
        report( 0, $what, 'no fault; the call returned ' . $json->encode( tree_at( $som, '/Envelope/Body/[1]' ) ) );
        return;
    }
    # SOAP::SOM's faultcode and faultstring read the SOAP 1.1 names; a 1.2
    # fault's Code/Value and Reason/Text are read through the same SOM.
    my $code = ( $version eq '1.1' ? $som->faultcode : $som->valueof('//Fault/Code/Value') ) // '';
    my $text = ( $version eq '1.1' ? $som->faultstring : $som->valueof('//Fault/Reason/Text') ) // '';
    my $got  = $som->valueof('//Error/Code');
    my $want_soap = $SOAP_CODES{$want}[ $version eq '1.1' ? 0 : 1 ];
    my @problems;
    push @problems, 'soapgate code ' . ( $got // '(none)' ) . ", expected $want" unless defined $got && $got eq $want;
    ( my $local = $code ) =~ s/^.*://;
    push @problems, "SOAP fault code $code, expected $want_soap" unless $local eq $want_soap;
    push @problems, 'empty faultstring' unless length $text;
    if (@problems) {
        report( 0, $what, join( '; ', @problems ) );
    }
    else {
        report( 1, $what, "SOAP::SOM fault $code $got: $text" );
    }
}

# A fault the WSDL declares (expect: declared:NAME:CODE:LOCAL:NS): a
# SOAP::SOM fault with the SOAP code, whose detail holds the detail element;
# what the SOM holds goes out on a `read` line.
sub judge_declared {
    my ( $what, $service, $op, $version, $som, $error ) = @_;
    my ( undef, $name, $code, $local ) = split /:/, $op->{expect}, 5;
    my $want_soap = $version eq '1.1' ? $code : { Client => 'Sender', Server => 'Receiver' }->{$code};
    if ( !$som || !ref $som ) {
        report( 0, $what, "no SOAP answer: $error" );
        return;
    }
    if ( !$som->fault ) {
        report( 0, $what, 'no fault; the call returned ' . $json->encode( tree_at( $som, '/Envelope/Body/[1]' ) ) );
        return;
    }
    my $soap_code = ( $version eq '1.1' ? $som->faultcode : $som->valueof('//Fault/Code/Value') ) // '';
    ( my $local_code = $soap_code ) =~ s/^.*://;
    if ( $local_code ne $want_soap ) {
        report( 0, $what, "SOAP fault code $soap_code, expected $want_soap" );
        return;
    }
    my $detail = $version eq '1.1' ? '/Envelope/Body/Fault/detail' : '/Envelope/Body/Fault/Detail';
    my $el = $som->dataof("$detail/[1]");
    if ( !$el || $el->name ne $local ) {
        report( 0, $what, "no $local in the fault's detail" );
        return;
    }
    read_line( $service, $op->{name}, $version, 'fault', "$what: declared fault $name as SOAP::SOM fault $soap_code",
        tree_at( $som, "$detail/[1]" ) );
}

sub poll_ticket {
    my ( $port, $service, $op, $version, $label, $som, $error ) = @_;
    if ( !$som || !ref $som || $som->fault ) {
        report( 0, $label, $som && ref $som ? 'fault ' . ( $som->faultstring // '' ) : "no SOAP answer: $error" );
        return;
    }
    my $job_id = $som->valueof('//Body/[1]/jobId');
    my $status = $som->valueof('//Body/[1]/status') // '';
    if ( !$job_id || $status !~ /^(QUEUED|RUNNING|DONE)$/ ) {
        report( 0, $label, 'ticket ' . $json->encode( tree_at( $som, '/Envelope/Body/[1]' ) ) );
        return;
    }
    my $poll_name = "Get$op->{name}Result";
    my %poll_op = ( name => $poll_name );
    if ( !$port->{ops}{$poll_name} ) {
        report( 0, $label, "the WSDL has no $poll_name in this binding" );
        return;
    }
    my $deadline = time + 120;
    my $polls    = 0;
    while (1) {
        my $request = { name => $poll_name, ns => $SOAPGATE_NS, attrs => {},
            children => [ { name => 'jobId', ns => $SOAPGATE_NS, attrs => {}, children => [], text => $job_id } ] };
        my ( $answer, $err ) = call( $port, \%poll_op, $version, $request );
        $polls++;
        if ( !$answer || !ref $answer || $answer->fault ) {
            report( 0, $label, "polling $poll_name: " . ( $answer && ref $answer ? $answer->faultstring : $err ) );
            return;
        }
        my $answered = $answer->valueof('//Body/[1]/jobId') // '';
        if ( $answered ne $job_id ) {
            report( 0, $label, "poll answered job $answered, not $job_id" );
            return;
        }
        my $st = $answer->valueof('//Body/[1]/status') // '';
        if ( $st eq 'DONE' ) {
            my $result = tree_at( $answer, '/Envelope/Body/[1]/result' );
            if ( ref $result ne 'HASH' || keys %$result != 1 ) {
                report( 0, $label, 'DONE without one result element: ' . $json->encode($result) );
                return;
            }
            read_line( $service, $op->{name}, $version, 'ticket', "$label (job $job_id, $polls poll(s))", ( values %$result )[0] );
            return;
        }
        if ( $st eq 'FAILED' || time > $deadline ) {
            report( 0, $label, "status $st after $polls poll(s)" );
            return;
        }
        sleep 0.2;
    }
}

sub read_manifest {
    my ( $path, $service ) = @_;
    my @ops;
    for my $raw ( split /\n/, slurp($path) ) {
        next if $raw eq '' || $raw =~ /^#/;
        my ( $svc, $name, $style, $versions, $one_way, $sample, $expect ) = split /\t/, $raw;
        next unless $svc eq $service;
        push @ops, { name => $name, style => $style, versions => [ split /,/, $versions ], one_way => $one_way, sample => $sample, expect => $expect };
    }
    return @ops;
}

sub main {
    die "usage: perl perl_client.pl BASE_URL MANIFEST SERVICE\n" unless @ARGV == 3;
    my ( $base, $manifest, $service ) = @ARGV;
    my @ops = read_manifest( $manifest, $service );
    if ( !@ops ) {
        report( 0, "$service: manifest", 'no operations listed' );
        return 1;
    }
    my $wsdl_url = "$base/soap/$service?wsdl";
    my $endpoint = "$base/soap/$service";
    my $res      = LWP::UserAgent->new( timeout => 30 )->get($wsdl_url);
    if ( !$res->is_success ) {
        report( 0, "$service: load $wsdl_url", $res->status_line );
        return 1;
    }
    my @ports = read_wsdl( $res->decoded_content, $service );
    my %versions = map { map { ( $_ => 1 ) } @{ $_->{versions} } } @ops;
    for my $version ( sort keys %versions ) {
        my @vports = grep { $_->{version} eq $version } @ports;
        report( scalar @vports, "$service: SOAP $version port", join( ', ', map { $_->{name} } @vports ) || 'the WSDL has none' );
        for my $port (@vports) {
            my $where = "$service\[$port->{name} SOAP $version]";
            report( $port->{address} eq $endpoint, "$where: address", $port->{address} );
            my $invalid_done = 0;
            for my $op (@ops) {
                next unless grep { $_ eq $version } @{ $op->{versions} };
                my $what = "$where $op->{name}";
                if ( !$port->{ops}{ $op->{name} } ) {
                    report( 0, "$what: listed", 'not in the binding' );
                    next;
                }
                my $payload = eval { sample_payload( $op->{sample} ) };
                if ( !$payload ) {
                    report( 0, "$what: sample", $@ );
                    next;
                }
                my $label = "$what: sample request";
                my ( $som, $error ) = call( $port, $op, $version, $payload );
                if ( $op->{expect} eq 'response' ) {
                    if ( !$som || !ref $som ) {
                        report( 0, $label, "no SOAP answer: $error" );
                    }
                    elsif ( $som->fault ) {
                        report( 0, $label, 'fault ' . ( $som->faultcode // '' ) . ': ' . ( $som->faultstring // '' ) );
                    }
                    else {
                        read_line( $service, $op->{name}, $version, 'response', $label, tree_at( $som, '/Envelope/Body/[1]' ) );
                    }
                }
                elsif ( $op->{expect} eq 'accepted' ) {
                    my $fault = $som && ref $som && $som->fault;
                    report( !$fault && !$error, $label, $fault ? 'fault ' . $som->faultstring : $error ? $error : 'accepted' );
                }
                elsif ( $op->{expect} eq 'ticket' ) {
                    poll_ticket( $port, $service, $op, $version, $label, $som, $error );
                }
                elsif ( $op->{expect} =~ /^declared:/ ) {
                    judge_declared( $label, $service, $op, $version, $som, $error );
                }
                else {
                    judge_fault( $label, $op->{expect}, $version, $som, $error );
                }
                next if $invalid_done || $op->{expect} ne 'response' || !@{ $payload->{children} };
                # The sample without the payload's first child.
                my %broken = %$payload;
                my ( $first, @rest ) = @{ $payload->{children} };
                $broken{children} = \@rest;
                $invalid_done = 1;
                judge_fault( "$what: invalid request ($first->{name} left out)", 'INVALID_REQUEST', $version, call( $port, $op, $version, \%broken ) );
            }
        }
    }
    print "SOAP::Lite $SOAP::Lite::VERSION: $service: $failures failed check(s)\n";
    return $failures ? 1 : 0;
}

$| = 1;
exit main();
