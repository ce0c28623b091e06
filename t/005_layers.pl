# The source tree's architecture, checked: src/ has one folder per
# subsystem, and includes run one way, down the data flow (doc/architecture.md):
#
#   clerk_sync.c (the module entry) > runs > webhooks, rls, changes > sync > vault
#     > store > clerk (the API client) > base
#
# A file may include headers of its own folder and of folders below it,
# never above; no include circle, between files or folders; our headers are
# named with their folder; nothing includes the entry file; every file
# starts with its one-line header comment and has at most 900 lines.
# Needs no server.
use strict;
use warnings;

use File::Basename qw(basename dirname);
use Test::More;

my $root = dirname(__FILE__) . '/..';
my %rank = (base => 1, clerk => 2, store => 3, vault => 4, sync => 5,
            webhooks => 6, rls => 6, changes => 6, runs => 7, '' => 8);

my @files = (sort(glob("$root/src/*/*.c"), glob("$root/src/*/*.h")), "$root/clerk_sync.c");
ok(@files > 30, 'the tree has its files');

my @folders = map { basename($_) } grep { -d } glob("$root/src/*");
is(join(' ', sort @folders), join(' ', sort grep { $_ ne '' } keys %rank), 'src/ holds the folders of the architecture, and only those');
is(join(' ', glob("$root/src/*.[ch]")), '', 'no source file sits in src/ itself');

my %edges;    # "folder/module" -> { "folder/module" => 1 }
for my $path (@files) {
    my ($folder) = $path =~ m{/src/([a-z_]+)/[^/]+$};
    $folder //= '';
    my $name = basename($path);
    (my $module = "$folder/$name") =~ s/\.[ch]$//;
    open my $fh, '<', $path or die "$path: $!";
    my @lines = <$fh>;
    close $fh;

    ok(@lines <= 900, "$folder/$name has at most 900 lines (" . scalar(@lines) . ')');
    like(join('', @lines[0 .. 2]), qr{\A/\*\n \* \Q$name\E\n \*\t\t\S.*\n}, "$folder/$name starts with its one-line header comment");

    for my $line (@lines) {
        my ($inc) = $line =~ /^#include "([^"]+)"/ or next;
        next if $inc =~ m{^(postgres|fmgr|funcapi|miscadmin|pgstat|varatt)\.h$} || $inc =~ m{^(access|catalog|commands|executor|lib|nodes|postmaster|storage|tcop|utils|common|datatype|parser|port|portability|mb|replication)/};
        if ($inc !~ m{^([a-z_]+)/([a-z_]+)\.h$} || !exists $rank{$1}) {
            fail("$folder/$name includes \"$inc\" without its folder");
            next;
        }
        my ($to_folder, $to) = ($1, $2);
        ok(-e "$root/src/$inc", "$folder/$name: \"$inc\" exists");
        ok($to_folder eq $folder || $rank{$to_folder} < $rank{$folder},
           "$folder/$name may include $inc (" . ($to_folder eq $folder ? 'its own folder' : "$to_folder is below $folder") . ')')
          if $folder ne '';
        $edges{$module}{"$to_folder/$to"} = 1 unless "$to_folder/$to" eq $module;
    }
}

my @entry = grep { $_ =~ /clerk_sync\.c$/ } map { keys %$_ } values %edges;
is(scalar(@entry), 0, 'nothing includes the module entry file');

# no circle between modules (a module is a .c with its .h)
my (%state, @cycle);
sub visit {
    my ($m, @path) = @_;
    return if ($state{$m} // 0) == 2;
    if (($state{$m} // 0) == 1) {
        @cycle = (@path, $m) unless @cycle;
        return;
    }
    $state{$m} = 1;
    visit($_, @path, $m) for sort keys %{ $edges{$m} // {} };
    $state{$m} = 2;
}
visit($_) for sort keys %edges;
is(join(' -> ', @cycle), '', 'no include circle between files');

done_testing();
